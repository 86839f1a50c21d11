"""The house's shape, read from its own imports (``ast``): no circle between top-level packages
or ``worker/`` folders, ``worker/`` never imports ``tasks`` (but for the CLI's enqueue, at call
time), nothing below ``tasks/`` imports Celery but the app, and task names appear as strings only
in the beat schedule."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("worker", "tasks", "models", "sandbox")
MODULES = ("celeryconfig",)
TASK_NAME = re.compile(r"^tasks\.\w+\.\w+$")


def _sources() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))
    for module in MODULES:
        yield ROOT / f"{module}.py"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def node_of(module: str) -> str | None:
    """The unit a circle is looked for between: a top-level package or module, and inside
    ``worker`` each folder or module (``worker/sync``, ``worker/app``)."""
    parts = module.split(".")
    if parts[0] == "worker":
        return "worker" if len(parts) == 1 else f"worker/{parts[1]}"
    return parts[0] if parts[0] in PACKAGES + MODULES else None


def imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(imported module, at module level) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # ``from worker.sync import plan`` imports worker.sync.plan
                yield f"{node.module}.{alias.name}", id(node) in top


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in _sources():
        source = node_of(_module_name(path))
        assert source is not None
        for target_module, _ in imports(path):
            target = node_of(target_module)
            if target is not None and target != source:
                edges.setdefault(source, set()).add(target)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every circle found by a depth-first walk (each reported once, from its first node)."""
    found: list[list[str]] = []
    seen: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        for target in sorted(edges.get(node, ())):
            if target in path:
                cycle = path[path.index(target) :]
                if sorted(cycle) not in [sorted(c) for c in found]:
                    found.append(cycle)
            elif target not in seen:
                walk(target, [*path, target])
        seen.add(node)

    for start in sorted(edges):
        walk(start, [start])
    return found


def test_no_circle_between_packages_or_worker_folders() -> None:
    assert circles(graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(edges) == [["a", "b", "c"]]


def test_worker_imports_tasks_only_to_enqueue_at_call_time() -> None:
    found = [
        (str(path.relative_to(ROOT)), module, top)
        for path in sorted((ROOT / "worker").rglob("*.py"))
        for module, top in imports(path)
        if module.split(".")[0] == "tasks"
    ]
    assert found and all(path == "worker/cli/enqueue.py" and not top for path, _, top in found), (
        found
    )


def test_only_the_app_and_the_doors_import_celery() -> None:
    # worker/cli/enqueue.py is imported by the CLI only when it enqueues (`--enqueue`).
    allowed = {"worker/app.py", "celeryconfig.py", "worker/cli/enqueue.py"}
    found = {
        str(path.relative_to(ROOT))
        for path in _sources()
        for module, _ in imports(path)
        if module.split(".")[0] == "celery"
    }
    assert {p for p in found if not p.startswith("tasks/")} <= allowed, found


def test_task_names_appear_as_strings_only_in_the_beat_schedule() -> None:
    found = []
    for path in _sources():
        if path.parts[-2:] == ("worker", "app.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and TASK_NAME.match(text):
                found.append((str(path.relative_to(ROOT)), text))
    assert found == []


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    return result.stdout.strip()


def test_the_sync_path_and_the_cli_do_not_import_celery_or_the_sandbox() -> None:
    code = (
        "import sys, worker.runtime, worker.sync.plan, worker.cli, worker.resources\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'celery', 'tasks', 'sandbox'}))"
    )
    assert _run(code) == "[]"


def test_the_tasks_the_readme_and_beat_name_are_registered() -> None:
    code = (
        "from worker.app import app\n"
        "app.loader.import_default_modules()\n"
        "print(sorted(n for n in app.tasks if n.startswith('tasks.')))"
    )
    names = _run(code, REDIS_URL="redis://127.0.0.1:6379/0")
    assert names == str(
        [
            "tasks.appointment_types.sync_appointment_types",
            "tasks.appointments.sync_appointments",
            "tasks.departments.sync_departments",
            "tasks.providers.sync_providers",
            "tasks.sync_tasks.replay_dead_letters",
            "tasks.sync_tasks.run_unit",
            "tasks.sync_tasks.sync_appointments",
            "tasks.sync_tasks.sync_changes",
            "tasks.sync_tasks.sync_practice",
            "tasks.sync_tasks.sync_reference",
        ]
    )
