"""Postgres for the benchmark: throwaway databases, rows written per table, and server CPU.

Rows written come from ``pg_stat_user_tables`` (``n_tup_ins + n_tup_upd + n_tup_del``). A backend
flushes its table statistics when it exits, before it leaves ``pg_stat_activity``; so once no
other session is connected to the database, the counters hold everything the contender wrote.

Server CPU is read from ``/proc/<pid>/stat`` of the Postgres processes (world-readable): the
backends and autovacuum workers of the contender's database (told apart by their process title)
plus the shared background writers (walwriter, checkpointer, background writer), sampled every
0.1 s while the contender runs; a backend's last tenth of a second before it exits is missed.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKGROUND = ("walwriter", "checkpointer", "background writer")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def with_database(url: str, name: str) -> str:
    """The libpq URL ``url`` pointing at database ``name``."""
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def sqlalchemy_url(url: str) -> str:
    """The same URL for SQLAlchemy with psycopg 3."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@contextmanager
def fresh_database(admin_url: str, prefix: str = "athena_bench") -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_name(url: str) -> str:
    """The database part of a libpq URL."""
    return url.rpartition("/")[2].split("?")[0]


def wait_for_other_sessions(url: str, *, timeout: float = 30.0) -> None:
    """Block until no session but this one is connected to the database (stats flushed)."""
    deadline = time.monotonic() + timeout
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.05)
    raise RuntimeError("sessions of the contender are still connected to the database")


def table_writes(url: str) -> dict[str, int]:
    """``schema.table`` -> tuples inserted + updated + deleted so far, every user table."""
    wait_for_other_sessions(url)
    query = (
        "SELECT schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del "
        "FROM pg_stat_user_tables WHERE schemaname NOT LIKE 'pg\\_temp%'"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return {name: int(n) for name, n in conn.execute(query).fetchall()}


def writes_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Per-table deltas (a table created in between counts from zero)."""
    return {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name, 0)}


def row_count(url: str, table: str) -> int:
    """``count(*)`` of a table (0 when it does not exist)."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if exists is None or exists[0] is None:
            return 0
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


def _stat(pid: int) -> tuple[str, float] | None:
    """(command name, user + system CPU seconds) of a process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _ours(title: str, database: str) -> bool:
    return database in title.split() or any(title.endswith(name) for name in BACKGROUND)


class PostgresCpu:
    """Samples the CPU seconds of the Postgres processes that work for one database."""

    def __init__(self, database: str, *, interval: float = 0.1) -> None:
        self._database = database
        self._interval = interval
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._ignored: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self, *, initial: bool = False) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in self._ignored:
                continue
            pid = int(entry)
            stat = _stat(pid)
            if stat is None:
                continue
            name, cpu = stat
            if pid not in self._last:
                if name != "postgres":
                    self._ignored.add(pid)
                    continue
                title = _title(pid)
                if not title.startswith("postgres:"):
                    continue  # the postmaster, or a backend forked a moment ago (no title yet)
                if not _ours(title, self._database):
                    self._ignored.add(pid)
                    continue
                # A process first seen after the start worked for us from its birth.
                self._first[pid] = cpu if initial else 0.0
            self._last[pid] = cpu

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> PostgresCpu:
        self._sample(initial=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        """CPU seconds used between enter and exit."""
        return sum(self._last[pid] - self._first[pid] for pid in self._last)
