"""Paging against the sandbox over real HTTP, plus scripted servers that misbehave."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from sandbox import SandboxConfig, SandboxServer
from sandbox.testing import serve_sandbox
from tests.athena.conftest import Reply, ScriptedServer, Seen, client_settings, no_sleep
from worker.athena import (
    AthenaClient,
    MemoryTokenCache,
    Page,
    PagingError,
    RetriesExhausted,
    build_client,
)

CONFIG = SandboxConfig(seed=3, departments=6, appointment_types=20, appointments=300)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with serve_sandbox(CONFIG) as server:
        yield server


@pytest.fixture(scope="module")
def tokens() -> MemoryTokenCache:
    """One token for the module: the sandbox, like preview, allows 5 mints a minute."""
    return MemoryTokenCache()


@pytest.fixture
def client(sandbox: SandboxServer, tokens: MemoryTokenCache) -> Iterator[AthenaClient]:
    sandbox.reset_stats()
    settings = client_settings(sandbox.url)
    with AthenaClient(settings, token_cache=tokens, sleep=no_sleep) as made:
        yield made


def ids(pages: list[Page], key: str) -> list[str]:
    return [str(r[key]) for page in pages for r in page.records]


def truth_ids(sandbox: SandboxServer, collection: str, key: str) -> list[str]:
    return [str(r[key]) for r in sandbox.truth("195900")[collection]]


def test_exact_multiple_of_the_limit_needs_no_extra_request(
    client: AthenaClient, sandbox: SandboxServer
) -> None:
    params = {"showalldepartments": True}
    pages = list(
        client.paginate("195900", "/departments", params, collection="departments", limit=3)
    )
    assert [(p.number, p.offset, len(p.records), p.totalcount, p.last) for p in pages] == [
        (1, 0, 3, 6, False),
        (2, 3, 3, 6, True),
    ]
    assert sorted(ids(pages, "departmentid")) == sorted(
        truth_ids(sandbox, "departments", "departmentid")
    )
    assert pages[1].params == {"showalldepartments": "true", "limit": 3, "offset": 3}
    assert client.stats.requests == 2
    assert sandbox.stats()["requests"]["/v1/{practiceid}/departments"] == {"200": 2}


def test_empty_listing_is_one_last_page(client: AthenaClient) -> None:
    params = {"departmentid": 1, "startdate": "01/01/1990", "enddate": "01/31/1990"}
    pages = list(
        client.paginate("195900", "/appointments/booked", params, collection="appointments")
    )
    assert [(p.records, p.totalcount, p.last, p.params["limit"]) for p in pages] == [
        ([], 0, True, 1000)
    ]


def test_next_links_walk_every_record_once(client: AthenaClient, sandbox: SandboxServer) -> None:
    params = {"hidenonpatient": False}
    pages = list(
        client.paginate(
            "195900", "/appointmenttypes", params, collection="appointmenttypes", limit=7
        )
    )
    assert [p.offset for p in pages] == [0, 7, 14]
    assert [p.last for p in pages] == [False, False, True]
    got = ids(pages, "appointmenttypeid")
    assert len(got) == len(set(got)) == 20
    assert sorted(got) == sorted(truth_ids(sandbox, "appointmenttypes", "appointmenttypeid"))


def test_a_server_clamping_the_limit_is_paged_to_the_end() -> None:
    config = SandboxConfig(
        seed=3, appointment_types=20, default_limit=8, max_limit=8, appointments_default_limit=8
    )
    with serve_sandbox(config) as server:
        client = AthenaClient(client_settings(server.url), sleep=no_sleep)
        params = {"hidenonpatient": False}
        pages = list(
            client.paginate(
                "195900", "/appointmenttypes", params, collection="appointmenttypes", limit=5000
            )
        )
    assert [(p.offset, len(p.records)) for p in pages] == [(0, 8), (8, 8), (16, 4)]


def test_practice_1_lists_accessible_practices(client: AthenaClient) -> None:
    pages = list(client.paginate("1", "/practiceinfo", collection="practiceinfo"))
    assert [r["practiceid"] for r in pages[0].records] == ["195900"]


def test_a_listing_without_its_collection_is_sent_again_then_given_up_as_retriable(
    client: AthenaClient, sandbox: SandboxServer
) -> None:
    with pytest.raises(RetriesExhausted, match="no 'providers' collection") as caught:
        list(client.paginate("195900", "/departments", collection="providers"))
    assert caught.value.path == "/departments" and caught.value.practice_id == "195900"
    assert caught.value.status == 200
    assert sandbox.stats()["requests"]["/v1/{practiceid}/departments"] == {"200": 3}


ROWS = [{"departmentid": str(i)} for i in range(1, 5)]
FULL = {"totalcount": 4, "departments": ROWS[2:]}


@pytest.mark.parametrize(
    "odd",
    [
        Reply(body={"totalcount": 4, "next": "/v1/195900/departments?offset=4"}),
        Reply(body=b'{"totalcount":4,"departments":[{"departmentid":"3"},{"depart'),
        Reply(body=b""),
        Reply(body="<html><body>Service Unavailable</body></html>", content_type="text/html"),
        Reply(body=ROWS[2:]),
        Reply(body={"totalcount": 4, "departments": {"departmentid": "3"}}),
    ],
    ids=["no-collection", "truncated", "empty", "html", "json-array", "not-a-list"],
)
@pytest.mark.usefixtures("debug_logs")
def test_a_200_that_is_not_the_envelope_is_sent_again_and_the_page_lands(
    scripted: ScriptedServer, odd: Reply
) -> None:
    answers = {"0": [Reply(body={"totalcount": 4, "departments": ROWS[:2]})], "2": [odd]}

    def listing(seen: Seen) -> Reply:
        queue = answers[seen.query["offset"]]
        return queue.pop(0) if queue else Reply(body=FULL)

    scripted.api("/departments", listing)
    client = AthenaClient(client_settings(scripted.url), sleep=no_sleep)
    with capture_logs() as logs:
        pages = list(client.paginate("195900", "/departments", collection="departments", limit=2))
    assert ids(pages, "departmentid") == ["1", "2", "3", "4"]
    offsets = [c.query["offset"] for c in scripted.calls("/v1/195900/departments")]
    assert offsets == ["0", "2", "2"]
    retried = [e for e in logs if e["event"] == "athena.request_retried"]
    assert [(e["attempt"], e["status"], e["path"]) for e in retried] == [(1, 200, "/departments")]


def test_an_empty_listing_may_omit_its_empty_collection(scripted: ScriptedServer) -> None:
    scripted.api("/departments", lambda _: Reply(body={"totalcount": 0}))
    client = AthenaClient(client_settings(scripted.url), sleep=no_sleep)
    pages = list(client.paginate("195900", "/departments", collection="departments"))
    assert [(p.records, p.totalcount, p.last) for p in pages] == [([], 0, True)]
    assert len(scripted.calls("/v1/195900/departments")) == 1


def test_pages_stream_one_request_at_a_time(client: AthenaClient) -> None:
    pages = client.paginate(
        "195900",
        "/appointmenttypes",
        {"hidenonpatient": False},
        collection="appointmenttypes",
        limit=5,
    )
    next(pages)
    assert client.stats.requests == 1  # a generator: nothing is fetched ahead


def test_a_looping_next_link_raises_instead_of_spinning(scripted: ScriptedServer) -> None:
    def looping(seen: Seen) -> Reply:
        rows = [{"departmentid": str(i)} for i in range(2)]
        return Reply(
            body={"totalcount": 10, "departments": rows, "next": "/v1/195900/departments?offset=0"}
        )

    scripted.api("/departments", looping)
    client = build_client(client_settings(scripted.url), sleep=no_sleep)
    with pytest.raises(PagingError, match="next offset 0 does not advance past 0"):
        list(client.paginate("195900", "/departments", collection="departments", limit=2))
    assert len(scripted.calls("/v1/195900/departments")) == 1


def test_a_server_ignoring_offset_raises_on_the_repeated_page(scripted: ScriptedServer) -> None:
    rows = [{"departmentid": "1"}, {"departmentid": "2"}]
    scripted.api("/departments", lambda _: Reply(body={"departments": rows}))
    client = AthenaClient(client_settings(scripted.url), sleep=no_sleep)
    with pytest.raises(PagingError, match="same page again at offset 2"):
        list(client.paginate("195900", "/departments", collection="departments", limit=2))
    assert [c.query["offset"] for c in scripted.calls("/v1/195900/departments")] == ["0", "2"]


def test_more_rows_than_totalcount_raises(scripted: ScriptedServer) -> None:
    rows = [{"departmentid": "1"}, {"departmentid": "2"}]
    scripted.api("/departments", lambda _: Reply(body={"totalcount": 1, "departments": rows}))
    client = AthenaClient(client_settings(scripted.url), sleep=no_sleep)
    with pytest.raises(PagingError, match="more than its totalcount 1"):
        list(client.paginate("195900", "/departments", collection="departments", limit=5))
