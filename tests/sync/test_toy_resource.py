"""A new resource is one module in ``worker/resources`` plus one registry line.

The toy resource below is such a module, written in the test: a frozen ``Resource`` with a pure
``to_row`` and its table. Registered with one line, it is synced end to end against a scripted
loopback server through the unchanged engine, CLI path included (plan, run, read, map, write,
deletion marking, dead letters) — nothing in ``worker/sync`` knows its name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from models.base import ResourceColumns
from tests.athena.conftest import Reply, ScriptedServer, Seen
from tests.athena.conftest import scripted as scripted
from worker.db import make_engine, upgrade
from worker.parse import parse_id, parse_str
from worker.resources import REGISTRY, ReadStrategy, Resource
from worker.resources.base import ensure_object
from worker.runtime import open_runtime
from worker.settings import settings_from_env
from worker.sync.plan import SyncRequest, expand_resources, run_request

PRACTICE = "195900"


# --- the new module: worker/resources/rooms.py -------------------------------------------------
class ToyBase(DeclarativeBase):
    pass


class Room(ToyBase, ResourceColumns):
    __tablename__ = "rooms"

    practice_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    room_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.Text())


def to_row(record: Mapping[str, Any], *, practice_id: str, **_context: Any) -> dict[str, Any]:
    rec = ensure_object(record)
    return {
        "practice_id": practice_id,
        "room_id": parse_id(rec.get("roomid"), "roomid"),
        "name": parse_str(rec.get("name"), "name"),
        "raw": record,
    }


RESOURCE = Resource(
    name="rooms",
    path="/rooms",
    collection="rooms",
    id_field="roomid",
    model=Room,
    to_row=to_row,
    key_column="room_id",
    params={"showall": "true"},
    read=ReadStrategy.LISTING,
)
# -------------------------------------------------------------------------------------------------


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(REGISTRY, RESOURCE.name, RESOURCE)  # the one registry line
    yield


def _serve(server: ScriptedServer, rooms: list[Any]) -> None:
    def answer(seen: Seen) -> Reply:
        assert seen.query.get("showall") == "true"
        offset, limit = int(seen.query.get("offset", 0)), int(seen.query["limit"])
        page = rooms[offset : offset + limit]
        return Reply(body={"totalcount": len(rooms), "rooms": page})

    server.api("/rooms", answer)


@pytest.mark.usefixtures("registered")
def test_a_toy_resource_syncs_end_to_end_through_the_unchanged_engine(
    scripted: ScriptedServer, fresh_pg_url: str
) -> None:
    upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    ToyBase.metadata.create_all(engine)
    settings = settings_from_env(
        {
            "DATABASE_URL": fresh_pg_url,
            "ATHENA_BASE_URL": scripted.url,
            "ATHENA_CLIENT_ID": "sandbox-client",
            "ATHENA_CLIENT_SECRET": "sandbox-secret",
            "ATHENA_PRACTICE_IDS": PRACTICE,
            "ATHENA_PAGE_LIMIT": "2",
            "ATHENA_RATE_LIMIT_RPS": "1000",
            "ATHENA_RATE_LIMIT_BURST": "1000",
            "SYNC_CLOCK_SKEW_SECONDS": "0",  # rows written a moment ago may be marked
        }
    )
    rooms: list[Any] = [{"roomid": i, "name": f"Room {i}"} for i in range(1, 6)]
    rooms.append({"name": "no id"})  # a bad record: a dead letter, the rest lands

    def sync() -> list[Any]:
        runtime = open_runtime(settings)
        try:
            request = SyncRequest(expand_resources(["rooms"]), (PRACTICE,), "incremental")
            return run_request(runtime.context(), request)
        finally:
            runtime.close()

    _serve(scripted, rooms)
    [result] = sync()
    assert (result.unit.resource, result.unit.mode, result.status) == ("rooms", "full", "partial")
    assert (result.counts.inserted, result.counts.dead_lettered) == (5, 1)
    assert result.counts.api_calls == 3  # pages of 2
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT room_id, name FROM rooms ORDER BY room_id")).all()
        letters = conn.execute(
            sa.text("SELECT resource, kind, error_message FROM dead_letters")
        ).all()
    assert [tuple(r) for r in stored] == [(str(i), f"Room {i}") for i in range(1, 6)]
    assert [(r.resource, r.kind) for r in letters] == [("rooms", "record")]
    assert "roomid" in letters[0].error_message

    _serve(scripted, [r for r in rooms if r.get("roomid") != 3])  # room 3 is gone upstream
    [again] = sync()
    assert (again.counts.inserted, again.counts.updated, again.counts.deleted) == (0, 0, 1)
    with engine.connect() as conn:
        gone = conn.execute(sa.text("SELECT room_id FROM rooms WHERE deleted_at IS NOT NULL"))
        assert [r.room_id for r in gone] == ["3"]
    engine.dispose()
