"""Records the strict decoder (orjson) read are marked ``Storable``: orjson refuses every value a
database cannot hold, so the mappers need not search them again; records the lenient fallback
read (a bare ``NaN``, a lone surrogate) are a plain list and are searched."""

from __future__ import annotations

from typing import Any

import pytest

from tests.athena.conftest import Reply, ScriptedServer, client_settings
from tests.athena.conftest import scripted as scripted
from worker.athena import AthenaClient
from worker.jsonsafe import Storable
from worker.parse import BadRecord
from worker.resources import get_resource
from worker.sync.pages import map_records

APPOINTMENT = (
    '{"appointmentid":"1","departmentid":"1","date":"06/01/2026","starttime":"08:00",'
    '"duration":15,"appointmentstatus":"f","lastmodified":"06/02/2026 17:30:37"'
)


def records_of(scripted: ScriptedServer, body: bytes) -> list[Any]:
    scripted.api("/appointments/booked", lambda _seen: Reply(body=body))
    with AthenaClient(client_settings(scripted.url)) as client:
        [page] = client.paginate("195900", "/appointments/booked", {}, collection="appointments")
    return page.records


@pytest.mark.parametrize(
    ("extra", "strict"),
    [
        ("", True),
        (',"copay":0', True),
        (',"copay":NaN', False),
        (',"note":"\\ud800"', False),
    ],
)
def test_only_strictly_decoded_records_are_marked_storable(
    scripted: ScriptedServer, extra: str, strict: bool
) -> None:
    body = f'{{"totalcount":1,"appointments":[{APPOINTMENT}{extra}}}]}}'.encode()
    records = records_of(scripted, body)
    assert len(records) == 1 and isinstance(records, Storable) is strict


def test_map_records_searches_a_plain_list_and_trusts_a_storable_one() -> None:
    resource = get_resource("appointments")
    record = {
        "appointmentid": "1", "departmentid": "1", "date": "06/01/2026", "starttime": "08:00",
        "copay": float("nan"),
    }  # fmt: skip
    context: dict[str, Any] = {"timezones": {"1": "America/New_York"}}
    plain = map_records([record], resource=resource, practice_id="195900", context=context)
    assert [b.field for b in plain.bad] == ["copay"] and plain.rows == []
    trusted = map_records(
        Storable([record]), resource=resource, practice_id="195900", context=context
    )
    assert trusted.bad == [] and len(trusted.rows) == 1  # the decoder's promise, taken
    with pytest.raises(BadRecord):
        resource.to_row(record, practice_id="195900", **context)
