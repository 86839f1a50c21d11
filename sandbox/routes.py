"""``/v1/{practiceid}/...`` routes: each returns a 200 body or raises ApiError."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from sandbox.appointments import render_json
from sandbox.config import SandboxConfig
from sandbox.faults import FaultInjector
from sandbox.feed_routes import FEED, is_feed
from sandbox.query import ApiError, Params, booked_filter, page_body
from sandbox.reference import Record
from sandbox.store import PracticeStore, with_providerlist


class Sandbox(Protocol):
    """What a route reads of the sandbox serving it (``sandbox.api.Sandbox``)."""

    @property
    def config(self) -> SandboxConfig: ...

    @property
    def stores(self) -> Mapping[str, PracticeStore]: ...

    @property
    def faults(self) -> FaultInjector: ...


SINGLE = {
    "providers": "{providerid}",
    "departments": "{departmentid}",
    "appointmenttypes": "{appointmenttypeid}",
    "appointments": "{appointmentid}",
}
LISTS = ("ping", "practiceinfo", "providers", "departments", "appointmenttypes")
BOOKED = ["appointments", "booked"]
MULTIPLE = [*BOOKED, "multipledepartment"]


def template(parts: Sequence[str]) -> str:
    """The stats key of a path, e.g. ``/v1/{practiceid}/providers/{providerid}``."""
    if len(parts) < 3 or parts[0] != "v1":
        return "(unknown)"
    practice = "1" if parts[1] == "1" else "{practiceid}"
    rest = list(parts[2:])
    if len(rest) == 1 and rest[0] in LISTS:
        return f"/v1/{practice}/{rest[0]}"
    if rest in (BOOKED, MULTIPLE) or is_feed(rest):
        return f"/v1/{practice}/" + "/".join(rest)
    if len(rest) == 2 and rest[0] in SINGLE:
        return f"/v1/{practice}/{rest[0]}/{SINGLE[rest[0]]}"
    return "(unknown)"


def is_listing(rest: Sequence[str]) -> bool:
    """Whether a path below ``/v1/{practiceid}`` answers a listing envelope."""
    return list(rest) in (BOOKED, MULTIPLE, FEED) or (
        len(rest) == 1 and rest[0] in LISTS and rest[0] != "ping"
    )


def _not_found(what: str) -> ApiError:
    return ApiError(
        404, {"error": f"Invalid {what}.", "detailedmessage": f"The {what} does not exist."}
    )


def _unknown_path() -> ApiError:
    return ApiError(404, {"error": "Unknown API path."})


def _page(
    sandbox: Sandbox, collection: str, rows: Sequence[bytes], base: str, params: Params
) -> bytes:
    default = sandbox.config.default_limit
    limit, offset = params.paging(default, sandbox.config.max_limit)
    return page_body(collection, rows, offset=offset, limit=limit, base=base, params=params)


def all_practiceinfo(sandbox: Sandbox, rest: list[str], params: Params) -> bytes:
    """``/v1/1/practiceinfo``: every practice this key may access."""
    if rest != ["practiceinfo"]:
        raise ApiError(
            404,
            {"error": "Invalid practice.", "detailedmessage": "Practice 1 only lists practices."},
        )
    rows = [render_json(store.ref.practiceinfo) for store in sandbox.stores.values()]
    return _page(sandbox, "practiceinfo", rows, "/v1/1/practiceinfo", params)


def practice_route(
    sandbox: Sandbox, store: PracticeStore, rest: list[str], params: Params
) -> bytes:
    """Dispatch a path below ``/v1/{practiceid}``."""
    base = f"/v1/{store.practice_id}/" + "/".join(rest)
    head = rest[0]
    if rest == ["ping"]:
        return b'{"Pong":"true"}'
    if rest == ["practiceinfo"]:
        return _page(sandbox, "practiceinfo", [render_json(store.ref.practiceinfo)], base, params)
    if rest in (BOOKED, MULTIPLE):
        first_only = sandbox.faults.faults.multi_department_first_only
        rows = store.booked(booked_filter(params, multiple=rest == MULTIPLE, first_only=first_only))
        limit, offset = params.paging(
            sandbox.config.appointments_default_limit, sandbox.config.max_limit
        )
        rendered = [a.rendered for a in rows]
        return page_body(
            "appointments", rendered, offset=offset, limit=limit, base=base, params=params
        )
    if len(rest) == 2 and head == "appointments":
        found = store.get(rest[1])
        if found is None:
            raise _not_found("appointment ID")
        return b"[" + found.rendered + b"]"
    if head not in LISTERS or len(rest) > 2:
        raise _unknown_path()
    if len(rest) == 2:
        return render_json([_single(store, head, rest[1], params)])
    records = LISTERS[head](store, params)
    return _page(sandbox, head, [render_json(r) for r in records], base, params)


def _single(store: PracticeStore, head: str, wanted: str, params: Params) -> Record:
    ref = store.ref
    if head == "providers":
        for record in ref.providers:
            if str(record["providerid"]) == wanted or wanted in record.get(
                "otherprovideridlist", []
            ):
                return _provider_shape(record, params.flag("showallproviderids", False))
        raise _not_found("provider ID")
    if head == "departments":
        for record in ref.departments:
            if record["departmentid"] == wanted:
                add = params.flag("providerlist", False)
                return with_providerlist(ref, record) if add else record
        raise _not_found("department ID")
    for record in ref.appointmenttypes:
        if str(record["appointmenttypeid"]) == wanted:
            return record
    raise _not_found("appointment type ID")


def _provider_shape(record: Record, show_all: bool) -> Record:
    if show_all:
        return record
    return {k: v for k, v in record.items() if k != "otherprovideridlist"}


def _providers(store: PracticeStore, params: Params) -> list[Record]:
    show_all = params.flag("showallproviderids", False)
    name = (params.get("name") or "").lower()
    return [
        _provider_shape(record, show_all)
        for record in store.ref.providers
        if not name or name in str(record.get("displayname", "")).lower()
    ]


def _departments(store: PracticeStore, params: Params) -> list[Record]:
    show_all = params.flag("showalldepartments", False)
    add_providers = params.flag("providerlist", False)
    if params.flag("hospitalonly", False):
        return []
    ref = store.ref
    return [
        with_providerlist(ref, record) if add_providers else record
        for record in ref.departments
        if show_all or record["departmentid"] not in ref.hidden_department_ids
    ]


def _appointmenttypes(store: PracticeStore, params: Params) -> list[Record]:
    hide_nonpatient = params.flag("hidenonpatient", True)
    hide_generic = params.flag("hidegeneric", False)
    hide_nongeneric = params.flag("hidenongeneric", False)
    hide_template = params.flag("hidetemplatetypeonly", False)
    return [
        record
        for record in store.ref.appointmenttypes
        if not (hide_nonpatient and not record["patient"])
        and not (hide_generic and record["generic"])
        and not (hide_nongeneric and not record["generic"])
        and not (hide_template and record["templatetypeonly"])
    ]


LISTERS: dict[str, Callable[[PracticeStore, Params], list[Record]]] = {
    "providers": _providers,
    "departments": _departments,
    "appointmenttypes": _appointmenttypes,
}
