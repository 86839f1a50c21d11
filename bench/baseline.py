"""The raw baseline loader: the floor of what Python + Postgres do for this job.

requests + json + psycopg 3: a fetch-ahead thread mints one token (client credentials), pages
through /providers, /departments, /appointmenttypes and /appointments/booked (per department
over the whole window, ``showcancelled=true``) by offset, and hands decoded pages over a small
queue; the main thread COPYs each page into a temp table and moves it with one
``INSERT … ON CONFLICT DO UPDATE`` (no ``WHERE``: a re-run rewrites every row), one commit per
page. Tables are typed like the sync's, ``raw`` JSONB and the appointments table's secondary
indexes included.

Deliberate shortcuts (what makes it a floor, not a product): times are parsed by Postgres with
``DateStyle = 'ISO, MDY'`` in UTC, so ``start_at`` ignores the department's zone and DST and the
audit times are not read as US/Eastern; no retries, no dead letters, no progress state; a
record without its id aborts the load.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import requests

from bench.child import RunSpec
from bench.sandbox import (
    BOOKED_PATH,
    CLIENT_ID,
    CLIENT_SECRET,
    LISTINGS,
    PRACTICE,
    TOKEN_PATH,
    booked_params,
)

Record = dict[str, Any]
Row = tuple[Any, ...]


@dataclass(frozen=True)
class Target:
    """A destination table: its columns (key first) and how a record becomes a row."""

    table: str
    key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (name, SQL type), raw last
    to_row: Callable[[Record], Row]
    indexes: tuple[str, ...] = ()  # column lists of secondary indexes


def _provider(r: Record) -> Row:
    return (
        PRACTICE,
        str(r["providerid"]),
        r.get("firstname"),
        r.get("lastname"),
        r.get("displayname"),
        r.get("providertype"),
        r.get("specialty"),
        None if r.get("npi") is None else str(r["npi"]),
        json.dumps(r),
    )


def _department(r: Record) -> Row:
    return (
        PRACTICE,
        str(r["departmentid"]),
        r.get("name"),
        r.get("timezonename"),
        r.get("state"),
        json.dumps(r),
    )


def _appointment_type(r: Record) -> Row:
    return (
        PRACTICE,
        str(r["appointmenttypeid"]),
        r.get("name"),
        r.get("duration"),
        r.get("generic"),
        r.get("patient"),
        json.dumps(r),
    )


def _appointment(r: Record) -> Row:
    day, start = r.get("date"), r.get("starttime")
    return (
        PRACTICE,
        r["appointmentid"],
        r.get("departmentid"),
        r.get("providerid"),
        r.get("patientid"),
        r.get("appointmenttypeid"),
        r.get("appointmenttype"),
        r.get("appointmentstatus"),
        f"{day} {start}",
        day,
        start,
        r.get("duration"),
        r.get("lastmodified"),
        r.get("scheduleddatetime"),
        r.get("cancelleddatetime"),
        r.get("cancelreasonname"),
        json.dumps(r),
    )


TEXT, KEY = "text", ("practice_id", "text")
TARGETS = {
    "providers": Target(
        "bl_providers",
        ("practice_id", "provider_id"),
        (
            KEY,
            ("provider_id", TEXT),
            ("first_name", TEXT),
            ("last_name", TEXT),
            ("display_name", TEXT),
            ("provider_type", TEXT),
            ("specialty", TEXT),
            ("npi", TEXT),
            ("raw", "jsonb"),
        ),
        _provider,
    ),
    "departments": Target(
        "bl_departments",
        ("practice_id", "department_id"),
        (
            KEY,
            ("department_id", TEXT),
            ("name", TEXT),
            ("timezone_name", TEXT),
            ("state", TEXT),
            ("raw", "jsonb"),
        ),
        _department,
    ),
    "appointmenttypes": Target(
        "bl_appointment_types",
        ("practice_id", "appointment_type_id"),
        (
            KEY,
            ("appointment_type_id", TEXT),
            ("name", TEXT),
            ("duration_minutes", "integer"),
            ("generic", "boolean"),
            ("patient", "boolean"),
            ("raw", "jsonb"),
        ),
        _appointment_type,
    ),
    "appointments": Target(
        "bl_appointments",
        ("practice_id", "appointment_id"),
        (
            KEY,
            ("appointment_id", TEXT),
            ("department_id", TEXT),
            ("provider_id", TEXT),
            ("patient_id", TEXT),
            ("appointment_type_id", TEXT),
            ("appointment_type_name", TEXT),
            ("status", TEXT),
            ("start_at", "timestamptz"),
            ("local_date", "date"),
            ("local_time", "time"),
            ("duration_minutes", "integer"),
            ("last_modified_at", "timestamptz"),
            ("scheduled_at", "timestamptz"),
            ("cancelled_at", "timestamptz"),
            ("cancel_reason", TEXT),
            ("raw", "jsonb"),
        ),
        _appointment,
        (
            # The same secondary indexes as athena-sync's appointments table: Postgres maintains
            # them on every write for both.
            "practice_id, department_id, local_date",
            "practice_id, last_modified_at",
            "practice_id, patient_id",
            "practice_id, provider_id, start_at",
        ),
    ),
}


def _ddl(target: Target) -> list[str]:
    columns = ", ".join(f"{name} {kind}" for name, kind in target.columns)
    return [
        f"CREATE TABLE IF NOT EXISTS {target.table} ({columns}, "
        f"PRIMARY KEY ({', '.join(target.key)}))",
        *(
            f"CREATE INDEX IF NOT EXISTS {target.table}_{i} ON {target.table} ({index})"
            for i, index in enumerate(target.indexes)
        ),
        f"CREATE TEMP TABLE tmp_{target.table} (LIKE {target.table}) ON COMMIT DELETE ROWS",
    ]


def _upsert_sql(target: Target) -> str:
    names = [name for name, _ in target.columns]
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n not in target.key)
    return (
        f"INSERT INTO {target.table} SELECT * FROM tmp_{target.table} "
        f"ON CONFLICT ({', '.join(target.key)}) DO UPDATE SET {updates}"
    )


class Fetcher:
    """Pages of every listing the job reads, in order, one request at a time."""

    def __init__(self, spec: RunSpec) -> None:
        self._spec = spec
        self._http = requests.Session()
        self._base = f"{spec.base_url}/v1/{PRACTICE}"

    def _token(self) -> None:
        response = self._http.post(
            f"{self._spec.base_url}{TOKEN_PATH}",
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=30,
        )
        response.raise_for_status()
        self._http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def _listing(
        self, path: str, params: dict[str, str], collection: str
    ) -> Iterator[list[Record]]:
        limit, offset = self._spec.page_limit, 0
        while True:
            response = self._http.get(
                self._base + path,
                params={**params, "limit": str(limit), "offset": str(offset)},
                timeout=60,
            )
            response.raise_for_status()
            body = json.loads(response.content)
            records: list[Record] = body.get(collection, [])
            yield records
            offset += len(records)
            if len(records) < limit or offset >= int(body.get("totalcount", 0)):
                return

    def pages(self) -> Iterator[tuple[str, list[Record]]]:
        """(resource, records) per page: the listings, then each department's appointments."""
        self._token()
        department_ids: list[str] = []
        for name, path, params in LISTINGS:
            for records in self._listing(path, params, name):
                if name == "departments":
                    department_ids.extend(str(r["departmentid"]) for r in records)
                yield name, records
        for department_id in department_ids:
            params = booked_params(department_id, self._spec.start, self._spec.end)
            for records in self._listing(BOOKED_PATH, params, "appointments"):
                yield "appointments", records

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


_DONE = object()


def _fetch_ahead(fetcher: Fetcher, pages: queue.Queue[Any]) -> None:
    try:
        for page in fetcher.pages():
            pages.put(page)
        pages.put(_DONE)
    except BaseException as exc:  # handed to the loading thread, which re-raises it
        pages.put(exc)


def load_all(spec: RunSpec, *, ahead: int = 4) -> int:
    """Fetch and load everything; the number of records fetched."""
    fetcher = Fetcher(spec)
    pages: queue.Queue[Any] = queue.Queue(maxsize=ahead)
    thread = threading.Thread(target=_fetch_ahead, args=(fetcher, pages), daemon=True)
    fetched = 0
    with psycopg.connect(spec.database_url) as conn:
        conn.execute("SET datestyle = 'ISO, MDY'")
        conn.execute("SET timezone = 'UTC'")
        for target in TARGETS.values():
            for statement in _ddl(target):
                conn.execute(statement)
        conn.commit()
        upserts = {name: _upsert_sql(target) for name, target in TARGETS.items()}
        thread.start()
        while (item := pages.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            name, records = item
            target = TARGETS[name]
            with conn.cursor() as cur:
                with cur.copy(f"COPY tmp_{target.table} FROM STDIN") as copy:
                    for record in records:
                        copy.write_row(target.to_row(record))
                cur.execute(upserts[name])
            conn.commit()
            fetched += len(records)
    thread.join()
    fetcher.close()
    return fetched


def loader(spec: RunSpec) -> Callable[[], int]:
    """The timed part: everything from the token to the last commit."""
    return lambda: load_all(spec)
