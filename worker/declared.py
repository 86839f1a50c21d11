"""Celery tasks declared without importing Celery.

A resource module (``tasks/providers.py`` …) is imported by every sync for its ``RESOURCE`` and
``to_row`` — the CLI, a benchmark, a worker — and its thin Celery task should not pull Celery
(~7 MB of modules) into processes that never send or run a task. ``task(name=...)`` returns a
:class:`DeclaredTask`: called, it runs the function; any other attribute (``delay``,
``apply_async``, ``name`` …) is the real Celery task. It is registered on ``worker.app.app`` as
soon as that module is imported (the worker, beat and enqueueing import it), whichever of the
two modules comes first.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

_DECLARED: list[DeclaredTask] = []


class DeclaredTask:
    """A function that is also, once Celery is loaded, the Celery task of the same name."""

    def __init__(self, function: Callable[..., Any], options: dict[str, Any]) -> None:
        self.function = function
        self.options = options
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # copy, pickle and friends probe dunders: not the task's
            raise AttributeError(attribute)
        from worker.app import app  # importing it registers every declared task

        return getattr(app.tasks[self.options["name"]], attribute)


def task(*, name: str, **options: Any) -> Callable[[Callable[..., Any]], DeclaredTask]:
    """Declare a Celery task named ``name`` (options as ``app.task`` takes them)."""

    def declare(function: Callable[..., Any]) -> DeclaredTask:
        declared = DeclaredTask(function, {"name": name, **options})
        _DECLARED.append(declared)
        app_module = sys.modules.get("worker.app")
        if app_module is not None and hasattr(app_module, "register_declared"):
            app_module.register_declared(declared)
        return declared

    return declare


def declared_tasks() -> list[DeclaredTask]:
    """Every task declared so far."""
    return list(_DECLARED)
