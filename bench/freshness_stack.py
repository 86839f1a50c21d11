"""What ``python -m bench.freshness`` runs against: a ``celery beat`` and worker processes, a
steady stream of sandbox mutations, and a poller that sees each change land in Postgres.

- **Change at the API**: a ``POST /_sandbox/mutate`` of one appointment; its time is this
  machine's clock when the sandbox answered (the sandbox's clock is the machine's: never
  advanced here), its ``lastmodified`` the sandbox's stamp.
- **Landed**: the appointment's row holds that ``lastmodified`` or a newer one; the lag runs to
  the row's ``last_seen_at`` (stamped by the worker as it wrote the page, just before the
  commit), or to the poll that first saw it when that is earlier (a later change rewrote it).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import requests

from bench.sandbox import PRACTICE

EASTERN = ZoneInfo("US/Eastern")
FAST_START = ("--without-gossip", "--without-mingle", "--without-heartbeat")
# One appointment per mutation; three kinds of six change visits weeks in the past.
KINDS = (
    ("modify", 3),
    ("cancel", 1),
    ("add", 1),
    ("checkin", 1),
    ("checkout", 1),
    ("cancel_past", 1),
)


@dataclass
class Change:
    """One mutation: the appointment, when the API changed it, and when it landed."""

    appointment_id: str
    kind: str
    at: datetime
    lastmodified: datetime
    day: date | None = None
    landed_at: datetime | None = None

    @property
    def lag_seconds(self) -> float | None:
        """Seconds from the change at the API to its row in Postgres (None: never landed)."""
        return None if self.landed_at is None else (self.landed_at - self.at).total_seconds()


class Processes:
    """``celery beat`` and workers in their own process groups, logging to files."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.tmp = tmp
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.tmp / f"{name}.log").open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker.app", *argv],
                env=self.env,
                cwd=self.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append((name, popen))

    def start(self, workers: int) -> None:
        """``workers`` workers (one pool process each), waited until ready, then the beat."""
        for n in range(1, workers + 1):
            name = f"worker{n}"
            argv = ["worker", "--loglevel=INFO", "--concurrency=1", "-n", f"{name}@%h"]
            self._spawn(name, [*argv, *FAST_START])
        deadline = time.monotonic() + 60
        while not all(" ready." in self.log(f"worker{n}") for n in range(1, workers + 1)):
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start:\n" + self.log("worker1")[-2000:])
            time.sleep(0.2)
        self._spawn("beat", ["beat", "--loglevel=INFO", "-s", str(self.tmp / "beat-schedule")])

    def log(self, name: str) -> str:
        """What a process has written so far."""
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL after 30 s, of every process named so."""
        for proc_name, popen in self.procs:
            if proc_name.startswith(name) and popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGTERM)
        for proc_name, popen in self.procs:
            if proc_name.startswith(name):
                try:
                    popen.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(popen.pid, signal.SIGKILL)
                    popen.wait()

    def ticks(self, entry: str) -> int:
        """How many times the beat sent ``entry``."""
        return self.log("beat").count(f"Sending due task {entry} ")


def _eastern(text: str) -> datetime:
    return datetime.strptime(text, "%m/%d/%Y %H:%M:%S").replace(tzinfo=EASTERN).astimezone(UTC)


class MutationStream:
    """One mutation every ``interval`` seconds, kinds drawn by weight, until stopped."""

    def __init__(self, url: str, interval: float, seed: int = 14) -> None:
        self.url = url
        self.interval = interval
        self.changes: list[Change] = []
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="mutations")
        self._http = requests.Session()

    def _one(self) -> None:
        kind = self._rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
        body: dict[str, Any] = {"practiceid": PRACTICE, kind: 1, "seed": self._rng.randrange(10**9)}
        answer = self._http.post(f"{self.url}/_sandbox/mutate", json=body, timeout=30)
        answer.raise_for_status()
        at = datetime.now(UTC)
        done = answer.json()
        ids = [m["appointmentid"] for m in done["modified"]]
        for name in ("cancelled", "added", "checkin", "checkout", "cancel_past"):
            ids += done.get(name, [])
        stamp = _eastern(done["lastmodified"])
        self.changes += [Change(i, kind, at, stamp) for i in ids]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._one()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._http.close()


class Poller:
    """Every ``every`` seconds, marks the changes whose row holds their ``lastmodified``."""

    def __init__(self, database_url: str, changes: list[Change], every: float = 0.5) -> None:
        self.database_url = database_url
        self.changes = changes
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="poller")

    def pending(self) -> list[Change]:
        return [c for c in list(self.changes) if c.landed_at is None]

    def poll(self, conn: psycopg.Connection[Any]) -> None:
        waiting = self.pending()
        if not waiting:
            return
        rows = conn.execute(
            "SELECT appointment_id, last_modified_at, last_seen_at FROM appointments "
            "WHERE practice_id = %s AND appointment_id = ANY(%s)",
            (PRACTICE, [c.appointment_id for c in waiting]),
        ).fetchall()
        seen = {r[0]: (r[1], r[2]) for r in rows}
        now = datetime.now(UTC)
        for change in waiting:
            found = seen.get(change.appointment_id)
            if found and found[0] is not None and found[0] >= change.lastmodified:
                written = found[1] if found[1] is not None and found[1] >= change.at else now
                change.landed_at = min(written, now)

    def _loop(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._stop.wait(self.every):
                self.poll(conn)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Truth:
    """The sandbox's ground truth: each appointment's day, ``lastmodified`` and status."""

    rows: dict[str, tuple[date, datetime, str]] = field(default_factory=dict)

    @classmethod
    def read(cls, url: str) -> Truth:
        answer = requests.get(f"{url}/_sandbox/truth", params={"practiceid": PRACTICE}, timeout=300)
        answer.raise_for_status()
        rows = {
            a["appointmentid"]: (
                datetime.strptime(a["date"], "%m/%d/%Y").date(),
                _eastern(a["lastmodified"]),
                a["appointmentstatus"],
            )
            for a in answer.json()["appointments"]
        }
        return cls(rows)

    def differing(self, database_url: str, ids: set[str]) -> set[str]:
        """Ids among ``ids`` whose row is missing or differs (status, ``lastmodified``)."""
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT appointment_id, last_modified_at, status FROM appointments "
                "WHERE practice_id = %s AND deleted_at IS NULL",
                (PRACTICE,),
            ).fetchall()
        stored = {r[0]: (r[1], r[2]) for r in rows}
        return {i for i in ids if stored.get(i) != (self.rows[i][1], self.rows[i][2])}
