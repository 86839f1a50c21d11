"""Request counters: by path template and status, by practice, and token mints."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Thread-safe request counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: Counter[tuple[str, int]] = Counter()
        self._by_practice: Counter[tuple[str, int]] = Counter()
        self._token_mints = 0

    def record(self, template: str, status: int, practice_id: str | None) -> None:
        """Count one answered request."""
        with self._lock:
            self._by_path[(template, status)] += 1
            if practice_id is not None:
                self._by_practice[(practice_id, status)] += 1

    def minted(self) -> None:
        """Count one token mint."""
        with self._lock:
            self._token_mints += 1

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._by_path.clear()
            self._by_practice.clear()
            self._token_mints = 0

    def snapshot(self) -> dict[str, Any]:
        """``{"total", "token_mints", "requests": {template: {status: n}},
        "practices": {practiceid: {status: n}}}``; statuses are string keys."""
        with self._lock:
            return {
                "total": sum(self._by_path.values()),
                "token_mints": self._token_mints,
                "requests": _nest(self._by_path),
                "practices": _nest(self._by_practice),
            }


def _nest(counts: Counter[tuple[str, int]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (key, status), count in sorted(counts.items()):
        nested.setdefault(key, {})[str(status)] = count
    return nested
