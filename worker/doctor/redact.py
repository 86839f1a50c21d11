"""What the doctor may show of a setting: URLs without credentials, identifiers by their ends."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

UNPARSEABLE = "(unparseable URL)"
HIDDEN = "***"
# query parameters that carry credentials (?password=..., ?sslpassword=..., ?token=...)
SECRET_PARAM = re.compile(r"pass|secret|token|key|auth|cred", re.IGNORECASE)


def mask(value: str) -> str:
    """An identifier shown by its ends only (``abcd…wxyz``); short ones fully hidden."""
    return f"{value[:4]}…{value[-4:]}" if len(value) >= 12 else "****"


def redact_url(url: str) -> str:
    """The URL with any password (in the authority or the query) replaced by ``***``.

    Anything that does not parse as ``scheme://…`` is not shown at all: a malformed URL is
    exactly where a password may sit somewhere unexpected.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return UNPARSEABLE
    if not parts.scheme or not url.startswith(f"{parts.scheme}:") or "//" not in url:
        return UNPARSEABLE
    netloc = parts.netloc
    if "@" in netloc:
        user = parts.username or ""
        host = (parts.hostname or "") + (f":{port}" if port else "")
        netloc = f"{user}:{HIDDEN}@{host}" if parts.password is not None else f"{user}@{host}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, HIDDEN if SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*/:")
    if "@" in parts.path or "@" in parts.fragment:
        return UNPARSEABLE
    if netloc == parts.netloc and not any(SECRET_PARAM.search(k) for k, _ in pairs):
        return url  # nothing to hide (and urlunsplit would drop sqlite:///'s empty authority)
    return urlunsplit(parts._replace(netloc=netloc, query=query))
