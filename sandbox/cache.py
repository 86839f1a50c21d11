"""A byte-bounded LRU of rendered answers, keyed by practice, path and normalized query."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class PageCache:
    """Rendered bodies; cleared whenever data or faults change."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0

    def get(self, key: Hashable) -> bytes | None:
        """The cached body, or None."""
        with self._lock:
            body = self._items.get(key)
            if body is None:
                return None
            self._items.move_to_end(key)
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        """Store a body, evicting the least recently used beyond the byte budget."""
        if len(body) > self._max:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= len(old) if old is not None else 0
            self._items[key] = body
            self._bytes += len(body)
            while self._bytes > self._max:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted)

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
