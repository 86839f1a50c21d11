"""Seeing athena-sync work: Prometheus metrics of the worker processes (``instruments``,
``process``), gauges read from the database at scrape time (``database``), and the beat's
heartbeat (``heartbeat``). Nothing here imports Celery; ``worker.app`` wires it to its signals."""
