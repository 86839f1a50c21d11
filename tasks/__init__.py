"""Celery tasks: the doors of athena-sync, and nothing else.

Each task takes JSON-safe arguments, makes the same engine call the CLI makes (``worker.sync``)
and turns a retriable error into a Celery retry. ``tasks.sync_tasks`` holds the unit, practice
fan-out, schedule and replay tasks; one module per resource (``tasks.providers`` …) holds that
resource's sync task. Nothing below this package imports it or Celery.
"""
