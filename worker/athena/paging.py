"""Paging as a value: given what a page returned, say what to ask next. Never sends a request.

Rules (ATHENA_API.md section 3), in order:
- more rows than ``totalcount`` (offset + returned > totalcount)        -> PagingError
- an empty page                                                         -> last page
- ``totalcount`` known: last once offset + returned >= totalcount. A short page with rows still
  due is NOT the end: the server may clamp ``limit`` (asked 5000, got 1000 plus ``next``).
- ``totalcount`` unknown: continue while ``next`` is present or the page was full.
- the next offset is the ``offset`` in the ``next`` link when it has one, else offset + returned;
  if it does not move forward, or the same page arrives twice, -> PagingError (a looping server).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from worker.athena.errors import PagingError

MAX_LIMIT = 5000


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def totalcount_of(body: dict[str, Any]) -> int | None:
    """The envelope's totalcount as an int, or None when absent or malformed."""
    return _int_or_none(body.get("totalcount"))


def next_offset_of(next_link: Any) -> int | None:
    """The ``offset`` query value in a ``next`` link (any case), or None."""
    if not isinstance(next_link, str) or not next_link:
        return None
    for key, value in parse_qsl(urlsplit(next_link).query, keep_blank_values=True):
        if key.lower() == "offset":
            return _int_or_none(value)
    return None


@dataclass(frozen=True)
class Pager:
    """Where the next page starts; advanced by :meth:`after` after each response."""

    limit: int
    offset: int = 0
    path: str = ""
    practice_id: str | None = None
    last_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")

    def query(self) -> dict[str, int]:
        """The paging parameters for the request at this position."""
        return {"limit": self.limit, "offset": self.offset}

    def _fail(self, message: str) -> PagingError:
        return PagingError(message, path=self.path, practice_id=self.practice_id)

    def is_last(self, returned: int, totalcount: int | None, has_next: bool) -> bool:
        """Whether a page with this shape ends the listing."""
        if totalcount is not None and self.offset + returned > totalcount:
            raise self._fail(
                f"server sent {self.offset + returned} rows, more than its totalcount {totalcount}"
            )
        if returned == 0:
            return True
        if totalcount is not None:
            return self.offset + returned >= totalcount
        return not has_next and returned < self.limit

    def after(
        self,
        *,
        returned: int,
        totalcount: int | None,
        next_link: Any = None,
        fingerprint: str | None = None,
    ) -> Pager | None:
        """The pager for the following page, or None when this page was the last."""
        has_next = isinstance(next_link, str) and bool(next_link)
        if self.is_last(returned, totalcount, has_next):
            return None
        if fingerprint is not None and fingerprint == self.last_fingerprint:
            raise self._fail(f"server returned the same page again at offset {self.offset}")
        advertised = next_offset_of(next_link)
        following = advertised if advertised is not None else self.offset + returned
        if following <= self.offset:
            raise self._fail(f"next offset {following} does not advance past {self.offset}")
        return replace(self, offset=following, last_fingerprint=fingerprint)
