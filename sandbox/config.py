"""Frozen configuration values for the sandbox: what data to build and which faults to inject."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SCOPE = "athena/service/Athenanet.MDP.*"


_RATES = (
    "error_rate",
    "html_502_share",
    "rate_429",
    "retry_after_share",
    "legacy_throttle_rate",
    "envelope_error_rate",
)


class ConfigError(ValueError):
    """A sandbox or fault setting is out of range; the message names the field."""


@dataclass(frozen=True)
class FaultConfig:
    """Faults to inject into ``/v1`` API answers. All off by default; seeded and reproducible.

    ``error_rate`` and ``rate_429`` are probabilities per API request. Of the 5xx answers,
    ``html_502_share`` are gateway-style 502s with an HTML body; the rest are 500 with a JSON body
    or 503 with an empty body. ``retry_after_share`` of the random 429s carry
    ``Retry-After: retry_after_seconds``. ``rps_limit`` is a per-practice requests-per-second
    ceiling answered with 429. ``legacy_throttle_rate`` is the probability of the retired Mashery
    gateway's throttle: 403 with an HTML "Developer Over Qps" page. ``envelope_error_rate`` is the
    probability that a listing's 200 answer is not its envelope (as gateways send during
    incidents): in turn JSON without the collection, truncated JSON, an empty body, an HTML page,
    a bare JSON array. ``token_ttl_seconds`` overrides the lifetime of newly minted tokens.
    ``malformed_appointments`` adds that many broken records to every practice's appointments.
    ``multi_department_first_only``: ``/appointments/booked/multipledepartment`` answers only
    the first ``departmentid`` sent and silently ignores the rest (a server reading a repeated
    parameter as one value).
    """

    error_rate: float = 0.0
    html_502_share: float = 0.4
    rate_429: float = 0.0
    retry_after_share: float = 0.5
    retry_after_seconds: int = 1
    rps_limit: float | None = None
    legacy_throttle_rate: float = 0.0
    envelope_error_rate: float = 0.0
    token_ttl_seconds: int | None = None
    latency_ms: int = 0
    malformed_appointments: int = 0
    multi_department_first_only: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {value}")
        for name in ("retry_after_seconds", "latency_ms", "malformed_appointments"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.rps_limit is not None and self.rps_limit <= 0:
            raise ConfigError(f"rps_limit must be positive, got {self.rps_limit}")
        if self.token_ttl_seconds is not None and self.token_ttl_seconds < 1:
            raise ConfigError(f"token_ttl_seconds must be at least 1, got {self.token_ttl_seconds}")

    @property
    def active(self) -> bool:
        """True when any request-level fault is switched on."""
        return bool(
            self.error_rate
            or self.rate_429
            or self.rps_limit
            or self.latency_ms
            or self.legacy_throttle_rate
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form accepted by ``POST /_sandbox/faults``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, payload: Any) -> FaultConfig:
        """Build from a JSON object; unknown keys and bad types raise ConfigError."""
        if not isinstance(payload, dict):
            raise ConfigError("faults must be a JSON object")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(payload) - set(known))
        if unknown:
            raise ConfigError(f"unknown fault fields: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, raw in payload.items():
            values[name] = _coerce(name, raw, str(known[name].type))
        return cls(**values)


def _coerce(name: str, raw: Any, type_name: str) -> Any:
    if raw is None and "None" in type_name:
        return None
    if type_name == "bool":
        if not isinstance(raw, bool):
            raise ConfigError(f"{name} must be true or false, got {raw!r}")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ConfigError(f"{name} must be a number, got {raw!r}")
    if type_name.startswith("int"):
        if raw != int(raw):
            raise ConfigError(f"{name} must be a whole number, got {raw!r}")
        return int(raw)
    return float(raw)


def _listed(entries: tuple[str, ...], practice_id: str, path: str) -> bool:
    """Whether an entry ``PRACTICEID:/prefix`` names ``path`` or a path below it."""
    for entry in entries:
        listed_practice, _, prefix = entry.partition(":")
        prefix = prefix.rstrip("/")
        if listed_practice == practice_id and (path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def _today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@dataclass(frozen=True)
class SandboxConfig:
    """What the sandbox serves. Data is a pure function of this value (``seed`` and sizes).

    Appointments fall on ``days`` days from ``anchor_date - days // 3`` (inclusive), plus the US
    DST-change Sundays nearest the anchor. ``forbidden_practices`` exist but answer 401
    "Incorrect permissions."; ``forbidden_endpoints`` (``PRACTICEID:/path``, e.g.
    ``195900:/appointmenttypes``) answer 403 for that path and the paths below it in that
    practice only, as an endpoint the key is not enabled for (``...=401``: a 401 "Incorrect
    permissions." instead, as production may answer for an endpoint not enabled);
    ``unserved_endpoints`` (``PRACTICEID:/path``) answer 404 "Unknown API path." there, as an
    endpoint this environment lacks; a changed-data subscription is readable
    ``subscription_activation_seconds`` (sandbox clock) after it is first requested (403 before,
    as the real API during activation); changes a feed read marked processed are served again
    by ``showprocessed…`` for ``processed_retention_seconds`` (sandbox clock) after that read
    (None: for ever; athenahealth keeps them a limited time); ``empty_practices`` are served
    but hold no departments, providers, appointment types or appointments (like a fresh
    preview practice); any other numeric practice answers 404 "Invalid practice.";
    ``feed_appointment_notes``: the changed-data feed's records carry ``appointmentnotes`` (as
    the real feed's may), which ``/appointments/booked`` never sends.
    """

    seed: int = 1
    practices: tuple[str, ...] = ("195900",)
    forbidden_practices: tuple[str, ...] = ("1128700",)
    empty_practices: tuple[str, ...] = ()
    forbidden_endpoints: tuple[str, ...] = ()
    unserved_endpoints: tuple[str, ...] = ()
    subscription_activation_seconds: float = 0.0
    processed_retention_seconds: float | None = None
    feed_appointment_notes: bool = False
    departments: int = 6
    providers: int = 12
    appointment_types: int = 20
    appointments: int = 2000
    days: int = 60
    anchor_date: dt.date = field(default_factory=_today_utc)
    client_id: str = "sandbox-client"
    client_secret: str = field(default="sandbox-secret", repr=False)
    token_ttl_seconds: int = 3600
    token_mints_per_minute: int = 5
    default_limit: int = 1500
    max_limit: int = 5000
    appointments_default_limit: int = 1000
    cache_bytes: int = 256 * 1024 * 1024
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if not self.practices:
            raise ConfigError("practices must list at least one practice id")
        for practice_id in (*self.practices, *self.forbidden_practices, *self.empty_practices):
            if not practice_id.isdigit() or practice_id == "1":
                raise ConfigError(f"practice id {practice_id!r} must be numeric and not 1")
        if set(self.practices) & set(self.forbidden_practices):
            raise ConfigError("a practice cannot be both served and forbidden")
        if set(self.empty_practices) & {*self.practices, *self.forbidden_practices}:
            raise ConfigError("an empty practice cannot also be served with data or forbidden")
        for entry in (*self.forbidden_endpoints, *self.unserved_endpoints):
            practice_id, sep, rest = entry.partition(":")
            path, _, status = rest.partition("=")
            well_formed = sep and practice_id.isdigit() and path.startswith("/") and len(path) > 1
            forbidden = entry in self.forbidden_endpoints
            if not well_formed or status not in (("", "401", "403") if forbidden else ("",)):
                raise ConfigError(
                    f"endpoint {entry!r} must be PRACTICEID:/path (forbidden ones may add "
                    "=401 or =403), e.g. 195900:/appointmenttypes"
                )
        if not self.subscription_activation_seconds >= 0:
            raise ConfigError("subscription_activation_seconds must not be negative")
        retention = self.processed_retention_seconds
        if retention is not None and not retention >= 0:
            raise ConfigError("processed_retention_seconds must not be negative")
        for name in ("departments", "providers", "appointment_types", "days"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.appointments < 0:
            raise ConfigError(f"appointments must not be negative, got {self.appointments}")
        if not 1 <= self.default_limit <= self.max_limit:
            raise ConfigError("default_limit must be between 1 and max_limit")
        if not 1 <= self.appointments_default_limit <= self.max_limit:
            raise ConfigError("appointments_default_limit must be between 1 and max_limit")
        if self.token_ttl_seconds < 1 or self.token_mints_per_minute < 1:
            raise ConfigError("token_ttl_seconds and token_mints_per_minute must be at least 1")

    def endpoint_forbidden(self, practice_id: str, path: str) -> int | None:
        """The status (403, or 401) ``path`` (below ``/v1/{practiceid}``) answers in this
        practice as an endpoint not enabled for the key; None when it is enabled."""
        for entry in self.forbidden_endpoints:
            listed, _, status = entry.partition("=")
            if _listed((listed,), practice_id, path):
                return int(status or 403)
        return None

    def endpoint_unserved(self, practice_id: str, path: str) -> bool:
        """Whether ``path`` (below ``/v1/{practiceid}``) answers 404 in this practice."""
        return _listed(self.unserved_endpoints, practice_id, path)

    @property
    def first_day(self) -> dt.date:
        """First day of the appointment range (inclusive)."""
        return self.anchor_date - dt.timedelta(days=self.days // 3)

    @property
    def last_day(self) -> dt.date:
        """Last day of the appointment range (inclusive)."""
        return self.first_day + dt.timedelta(days=self.days - 1)
