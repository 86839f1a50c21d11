"""Plain-language verdicts: an HTTP outcome in, what it means and what to do next out (pure)."""

from __future__ import annotations

from worker.athena.errors import AthenaError, RetriableError
from worker.doctor.report import Verdict

PREVIEW_PRACTICE = "195900"
SUPPORT = "if it persists, send the support report (it carries the request ids) to athenahealth"


def _text(error: AthenaError) -> str:
    return f"{error.api_error or ''} {error.detail or ''}".lower()


def token_failure(error: AthenaError) -> Verdict:
    """Why the token endpoint did not hand out a token."""
    status, text = error.status, _text(error)
    if status is None:
        return Verdict(
            "fail",
            f"token endpoint unreachable ({error.message})",
            "check ATHENA_TOKEN_URL / ATHENA_ENVIRONMENT and the network; the API may be down",
        )
    if status == 429:
        wait = f" (Retry-After {error.retry_after:g} s)" if error.retry_after else ""
        return Verdict(
            "fail",
            f"token endpoint rate limited{wait}: at most 5 new tokens a minute in preview, "
            "50 in production",
            "wait a minute and run again; let workers share one token by setting REDIS_URL",
        )
    if status >= 500:
        return Verdict("fail", f"token endpoint error {status}", f"try again later; {SUPPORT}")
    if 200 <= status < 300:
        return Verdict(
            "fail",
            f"the token endpoint answered {status} without a token",
            "check ATHENA_TOKEN_URL: it may point at a web page or a proxy",
        )
    if status == 404:
        return Verdict(
            "fail",
            "no token endpoint at ATHENA_TOKEN_URL",
            "check ATHENA_TOKEN_URL (e.g. https://api.preview.platform.athenahealth.com"
            "/oauth2/v1/token)",
        )
    if "scope" in text:
        return Verdict(
            "fail",
            f"the key may not use scope ATHENA_SCOPE ({error.api_error})",
            "unset ATHENA_SCOPE to use athena/service/Athenanet.MDP.*, or ask athenahealth "
            "to grant the scope",
        )
    if (
        status == 401
        or "client" in text
        or (status == 400 and "grant" not in text and error.api_error)
    ):
        return Verdict(
            "fail",
            f"the token endpoint refused the client id or secret ({error.api_error or status})",
            "check ATHENA_CLIENT_ID and ATHENA_CLIENT_SECRET, and that ATHENA_ENVIRONMENT "
            "matches the key: preview keys do not work in production",
        )
    return Verdict(
        "fail",
        f"the token endpoint refused the request ({status}: {error.api_error or 'no text'})",
        f"check ATHENA_TOKEN_URL and any proxy or firewall in between; {SUPPORT}",
    )


def practice_list_failure(error: AthenaError) -> Verdict:
    """``/v1/1/practiceinfo`` failed: the sync does not need it, so this only warns."""
    reason = f"{error.status or 'no answer'}: {error.api_error or error.message}"
    return Verdict(
        "warn",
        f"could not list the key's practices ({reason})",
        "the sync does not need this list; probe each practice with --practice",
    )


def api_failure(error: AthenaError, *, endpoint: str, practice_id: str) -> Verdict:
    """Why a GET below ``/v1/{practice_id}`` failed."""
    status, text = error.status, _text(error)
    if status is None:
        return Verdict(
            "fail",
            f"no answer ({error.message})",
            "check ATHENA_BASE_URL and the network; the API may be down, try again later",
        )
    if status == 401 and "permission" in text:
        return Verdict(
            "fail",
            "practice not enabled for this key",
            f"ask athenahealth to grant this key access to practice {practice_id}",
        )
    if status == 401 and "inactive" in text:
        return Verdict(
            "fail",
            "the key (developer app) is inactive",
            "activate the app in the athenahealth developer portal, or ask athenahealth",
        )
    if status == 401:
        return Verdict(
            "fail",
            "a valid token was refused",
            "check that ATHENA_BASE_URL and ATHENA_TOKEN_URL belong to the same environment",
        )
    if status == 403 and isinstance(error, RetriableError):
        return Verdict(
            "fail",
            "API rate limited (the legacy gateway's 403 Developer Over Qps)",
            "wait and run again; lower ATHENA_RATE_LIMIT_RPS, and share the budget via REDIS_URL",
        )
    if status == 403 and not error.api_error:
        return Verdict(
            "fail",
            "403 without an API error: a gateway refused (throttling or a firewall)",
            f"retry later and check proxies in between; {SUPPORT}",
        )
    if status == 403:
        return Verdict(
            "fail",
            f"this key may not call {endpoint} for this practice",
            f"ask athenahealth to enable {endpoint} for this key and practice (in production "
            "some endpoints need a permissioned rollout)",
        )
    if status == 404 and "practice" in text:
        return Verdict(
            "fail",
            "practice does not exist",
            f"check the practice id (--practice, ATHENA_PRACTICE_IDS); the preview sandbox "
            f"practice is {PREVIEW_PRACTICE}",
        )
    if status == 404:
        return Verdict(
            "fail",
            f"{endpoint} not found",
            "check ATHENA_BASE_URL (a host only, without /v1); the endpoint may not exist here",
        )
    if status == 429:
        return Verdict(
            "fail",
            "API rate limited",
            "wait and run again; lower ATHENA_RATE_LIMIT_RPS, and share the budget via REDIS_URL",
        )
    if status >= 500 or 200 <= status < 300:
        return Verdict(
            "fail", f"server error or gateway page ({status})", f"retry later; {SUPPORT}"
        )
    return Verdict("fail", f"request rejected ({status}: {error.api_error or 'no text'})", SUPPORT)


# (what the practice lacks, what that means for the sync) per endpoint, when it lists nothing
EMPTY: dict[str, tuple[str, str]] = {
    "/departments": (
        "no departments: the practice is empty",
        "nothing to sync yet; use a practice with data (the preview sandbox has "
        f"{PREVIEW_PRACTICE}) or ask athenahealth to set the practice up",
    ),
    "/providers": (
        "no providers: none are set up in this practice",
        "the sync will store none; ask the practice to set providers up",
    ),
    "/appointmenttypes": (
        "no appointment types: none are set up in this practice",
        "the sync will store none; ask the practice to set appointment types up",
    ),
}
NOUNS = {
    "/providers": "providers",
    "/departments": "departments",
    "/appointmenttypes": "appointment types",
    "/appointments/booked": "appointments",
}


def listed(endpoint: str, records: int, *, scope: str = "") -> Verdict:
    """A listing answered 200 with ``records`` rows in all."""
    if records == 0 and endpoint in EMPTY:
        text, step = EMPTY[endpoint]
        return Verdict("warn", text, step)
    noun = NOUNS.get(endpoint, "records")
    suffix = f" {scope}" if scope else ""
    return Verdict("ok", f"{records} {noun}{suffix}")
