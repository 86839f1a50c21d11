"""The dlt contender: dlt's REST client merging into Postgres, as its docs show it.

``RESTClient`` with ``OAuth2ClientCredentials`` and ``OffsetPaginator`` (``totalcount``), one
resource per listing and a transformer that reads each department's appointments over the
window; ``write_disposition="merge"`` on the records' own ids, into the ``athena`` dataset of a
Postgres database (dlt's defaults otherwise: its staging dataset, delete-insert merge). The
pipeline's state lives under the run's work directory, so the re-run is the same pipeline
loading the same data again.

Telemetry is switched off by the harness (``RUNTIME__DLTHUB_TELEMETRY=false``). Needs the
``bench`` extra: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dlt
from dlt.sources.helpers.rest_client.auth import OAuth2ClientCredentials
from dlt.sources.helpers.rest_client.client import RESTClient
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator

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

DATASET = "athena"
KEYS = {
    "providers": "providerid",
    "departments": "departmentid",
    "appointmenttypes": "appointmenttypeid",
}


def _client(spec: RunSpec) -> RESTClient:
    auth = OAuth2ClientCredentials(
        access_token_url=f"{spec.base_url}{TOKEN_PATH}",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    return RESTClient(
        base_url=f"{spec.base_url}/v1/{PRACTICE}",
        auth=auth,
        paginator=OffsetPaginator(limit=spec.page_limit, total_path="totalcount"),
    )


def athena_source(spec: RunSpec) -> Any:
    """The four resources as a dlt source."""
    client = _client(spec)

    def listing(name: str, path: str, params: dict[str, str]) -> Any:
        @dlt.resource(name=name, primary_key=KEYS[name], write_disposition="merge")
        def pages() -> Iterator[Any]:
            yield from client.paginate(path, params=params, data_selector=name)

        return pages

    resources = {name: listing(name, path, params) for name, path, params in LISTINGS}

    @dlt.transformer(
        data_from=resources["departments"],
        name="appointments",
        primary_key="appointmentid",
        write_disposition="merge",
    )
    def appointments(departments: list[dict[str, Any]]) -> Iterator[Any]:
        for department in departments:
            params = booked_params(str(department["departmentid"]), spec.start, spec.end)
            yield from client.paginate(BOOKED_PATH, params=params, data_selector="appointments")

    @dlt.source(name="athena")
    def source() -> Any:
        return [*resources.values(), appointments]

    return source()


def _credentials(url: str) -> str:
    """dlt insists on a password; with trust authentication any will do."""
    scheme, _, rest = url.partition("://")
    user_info, at, host = rest.rpartition("@")
    if at and ":" not in user_info:
        return f"{scheme}://{user_info}:unused@{host}"
    return url


def loader(spec: RunSpec) -> Callable[[], int]:
    """One ``pipeline.run`` of the source into Postgres."""
    pipeline = dlt.pipeline(
        pipeline_name="athena_bench",
        pipelines_dir=spec.work_dir,
        destination=dlt.destinations.postgres(credentials=_credentials(spec.database_url)),
        dataset_name=DATASET,
    )

    def load() -> int:
        info = pipeline.run(athena_source(spec))
        info.raise_on_failed_jobs()
        trace = pipeline.last_trace
        normalized = trace.last_normalize_info if trace is not None else None
        counts = normalized.row_counts if normalized is not None else {}
        return sum(n for table, n in counts.items() if table in {*KEYS, "appointments"})

    return load
