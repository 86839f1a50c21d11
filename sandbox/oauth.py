"""``POST /oauth2/v1/token``: the client-credentials grant, as athenahealth's Okta answers it."""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import parse_qsl

from sandbox.config import DEFAULT_SCOPE
from sandbox.response import Headers, Response, api_json
from sandbox.tokens import MintLimited, TokenIssuer

NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


def _error(status: int, code: str, description: str, *headers: tuple[str, str]) -> Response:
    payload = {"error": code, "error_description": description}
    return api_json(status, payload, (*NO_STORE, *headers))


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def token_endpoint(
    issuer: TokenIssuer,
    headers: Headers,
    body: bytes,
    *,
    client: tuple[str, str],
    ttl_seconds: int,
) -> tuple[Response, bool]:
    """Answer a token request; the flag says whether a token was minted."""
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    grant = form.get("grant_type")
    if not grant:
        return _error(400, "invalid_request", "The grant_type parameter is required."), False
    if grant != "client_credentials":
        return _error(400, "unsupported_grant_type", "Only client_credentials is supported."), False
    presented = _basic(headers.get("Authorization"))
    if presented is None and "client_id" in form:
        presented = (form["client_id"], form.get("client_secret", ""))
    if presented is None or not (_same(presented[0], client[0]) and _same(presented[1], client[1])):
        return _error(401, "invalid_client", "Client authentication failed."), False
    try:
        token = issuer.mint(ttl_seconds)
    except MintLimited as limited:
        retry = ("Retry-After", str(limited.retry_after))
        return _error(429, "rate_limit_exceeded", "Too many token requests.", retry), False
    scope = form.get("scope") or DEFAULT_SCOPE
    payload = {
        "token_type": "Bearer",
        "expires_in": ttl_seconds,
        "access_token": token,
        "scope": scope,
    }
    return api_json(200, payload, NO_STORE), True
