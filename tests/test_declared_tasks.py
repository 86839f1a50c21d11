"""Resource modules declare their Celery tasks without importing Celery (worker.declared)."""

from __future__ import annotations

import subprocess
import sys

RESOURCE_TASKS = [
    "tasks.appointment_types.sync_appointment_types",
    "tasks.appointments.sync_appointments",
    "tasks.departments.sync_departments",
    "tasks.providers.sync_providers",
]


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", **env},
    )  # fmt: skip
    return result.stdout.strip()


def test_the_sync_path_does_not_import_celery() -> None:
    code = (
        "import sys, worker.runtime, worker.sync.plan, worker.cli\n"
        "from tasks import all_resources\n"
        "all_resources()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'celery'))"
    )
    assert _run(code) == "[]"


def test_resource_tasks_are_registered_whichever_module_comes_first() -> None:
    listing = "print(sorted(n for n in app.tasks if n.startswith('tasks.')))"
    first_app = (
        f"from worker.app import app\nfrom tasks import all_resources\nall_resources()\n{listing}"
    )
    first_tasks = (
        f"from tasks import all_resources\nall_resources()\nfrom worker.app import app\n{listing}"
    )
    for code in (first_app, first_tasks):
        assert _run(code, REDIS_URL="redis://127.0.0.1:6379/0") == str(RESOURCE_TASKS)


def test_a_declared_task_is_the_function_and_the_celery_task() -> None:
    code = (
        "import tasks.providers as p\n"
        "task = p.sync_providers\n"
        "print(task.__name__, task.name, type(task.delay).__name__)"
    )
    out = _run(code, REDIS_URL="redis://127.0.0.1:6379/0")
    assert out == "sync_providers tasks.providers.sync_providers method"
