"""The token check of the EAS gateway: ``authorization: Bearer <token>``, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

PREFIX = "Bearer "


def check_authorization(metadata: Iterable[tuple[str, str | bytes]] | None, token: str) -> str | None:
    """``None`` when the metadata carries exactly ``Bearer <token>``, else why not (never the token)."""
    values = [v for k, v in (metadata or ()) if k == "authorization"]
    if not values:
        return "authorization failed: the 'authorization' metadata is missing; send 'authorization: Bearer <token>'"
    if len(values) > 1:
        return "authorization failed: more than one 'authorization' metadata entry"
    value = values[0].decode("latin-1") if isinstance(values[0], bytes) else values[0]
    if not value.startswith(PREFIX) or value[len(PREFIX):].startswith(" ") or value != value.strip():
        return "authorization failed: malformed 'authorization' value; it must be 'Bearer <token>' (the word Bearer, one space)"
    if not hmac.compare_digest(value[len(PREFIX):].encode(), token.encode()):
        return "authorization failed: the token is not valid for this service"
    return None
