"""Alibaba Cloud API signatures checked the way the control plane checks them, for the local stand-in.

The official SDK (``alibabacloud-tea-openapi``) signs each request with the caller's
AccessKey pair: by default ``ACS3-HMAC-SHA256`` (the canonical request of method, path,
sorted query, the signed headers and the body's SHA-256, HMAC'd with the secret), or with
``signature_algorithm='v2'`` the older ROA form ``acs ID:SIGNATURE`` (HMAC-SHA1 over method,
accept, content-md5, content-type, date, the ``x-acs-*`` headers and the resource). A request
that is unsigned, signed with another key, altered, stale or replayed is refused with the
code and message the real service uses.

>>> key = AccessKey("LOCALKEY", "secret")
>>> key
AccessKey(id='LOCALKEY', secret='***')
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote

FRESH_S = 15 * 60  # how far a request's date may be from now, either way
_ACS3 = re.compile(r"ACS3-HMAC-SHA256 Credential=([^,\s]+),SignedHeaders=([^,\s]+),Signature=([0-9a-f]{64})")
_ROA = re.compile(r"acs ([^:\s]+):([A-Za-z0-9+/=]+)")


@dataclass(frozen=True)
class AccessKey:
    """An AccessKey pair; the secret never shows in a repr."""

    id: str
    secret: str = field(repr=False)

    @classmethod
    def generate(cls) -> AccessKey:
        """A fresh throwaway pair (the ID starts with ``LOCAL``, so nobody takes it for a real one)."""
        return cls("LOCAL" + secrets.token_hex(8).upper(), secrets.token_urlsafe(24))

    def __repr__(self) -> str:
        return f"AccessKey(id={self.id!r}, secret='***')"


class Refused(Exception):
    """A request the control plane would refuse: HTTP status, error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _incomplete(why: str) -> Refused:
    return Refused(400, "IncompleteSignature", f"The request signature does not conform to Aliyun standards: {why}.")


def _mismatch(string_to_sign: str) -> Refused:
    return Refused(400, "SignatureDoesNotMatch",
                   f"Specified signature does not match our calculation. server string to sign is:{string_to_sign}")


class Verifier:
    """Checks requests against one AccessKey pair; remembers nonces for ``FRESH_S`` so none is used twice."""

    def __init__(self, key: AccessKey) -> None:
        self.key = key
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, method: str, target: str, headers: Any, body: bytes) -> str:
        """The AccessKey ID a request was signed with; raises ``Refused`` otherwise.

        ``target`` is the request line's path and query as sent; ``headers`` an
        ``email.message.Message`` (as ``http.server`` gives them).
        """
        authorization = headers.get("Authorization", "")
        if not authorization:
            raise _incomplete("the Authorization header is missing")
        acs3, roa = _ACS3.fullmatch(authorization), _ROA.fullmatch(authorization)
        if acs3 is None and roa is None:
            raise _incomplete("the Authorization header is neither ACS3-HMAC-SHA256 nor 'acs ID:SIGNATURE'")
        key_id = (acs3 or roa).group(1)  # type: ignore[union-attr]
        if not hmac.compare_digest(key_id.encode(), self.key.id.encode()):
            raise Refused(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        path, _, query = target.partition("?")
        if acs3 is not None:
            self._fresh(headers.get("x-acs-date"), iso=True)
            expected, string_to_sign = self._acs3(method, path, query, headers, body, acs3.group(2))
            given = acs3.group(3)
        else:
            self._fresh(headers.get("date"), iso=False)
            expected, string_to_sign = self._roa(method, path, query, headers, body)
            given = roa.group(2)  # type: ignore[union-attr]
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise _mismatch(string_to_sign)
        self._once(headers.get("x-acs-signature-nonce"))
        return key_id

    def _acs3(self, method: str, path: str, query: str, headers: Any, body: bytes, signed: str) -> tuple[str, str]:
        names = signed.split(";")
        for needed in ("host", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
            if needed not in names:
                raise _incomplete(f"{needed} must be a signed header")
        payload = hashlib.sha256(body).hexdigest()
        if headers.get("x-acs-content-sha256") != payload:
            raise Refused(400, "ContentSHA256NotMatched", "The x-acs-content-sha256 header does not match the request body.")
        canonical_headers = "".join(
            f"{name}:{','.join(sorted(v.strip() for v in headers.get_all(name, [])))}\n" for name in names
        )
        canonical = "\n".join([method, path or "/", _canonical_query(query), canonical_headers, signed, payload])
        string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        return hmac.new(self.key.secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest(), string_to_sign

    def _roa(self, method: str, path: str, query: str, headers: Any, body: bytes) -> tuple[str, str]:
        md5 = headers.get("content-md5", "")
        if body and md5 != base64.b64encode(hashlib.md5(body).digest()).decode():
            raise _incomplete("content-md5 must be the MD5 of the body")
        head = [method, headers.get("accept", ""), md5, headers.get("content-type", ""), headers.get("date", "")]
        acs = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-acs-"))
        pairs = sorted((unquote(k), unquote(v)) for k, _, v in (p.partition("=") for p in query.split("&") if p))
        resource = unquote(path) + ("?" + "&".join(f"{k}={v}" if v else k for k, v in pairs) if pairs else "")
        string_to_sign = "\n".join(head) + "\n" + "".join(f"{k}:{v}\n" for k, v in acs) + resource
        digest = hmac.new(self.key.secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode(), string_to_sign

    def _fresh(self, stamp: str | None, iso: bool) -> None:
        if not stamp:
            raise _incomplete("the request has no date (x-acs-date, or date for the ROA signature)")
        try:
            parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) if iso else parsedate_to_datetime(stamp)
            when = parsed.timestamp()
        except (ValueError, TypeError):
            raise Refused(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.") from None
        if abs(time.time() - when) > FRESH_S:
            raise Refused(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")

    def _once(self, nonce: str | None) -> None:
        if not nonce:
            raise _incomplete("x-acs-signature-nonce is missing")
        now = time.time()
        with self._lock:
            if nonce in self._nonces:
                raise Refused(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
            for old in [n for n, t in self._nonces.items() if now - t > 2 * FRESH_S]:
                del self._nonces[old]
            self._nonces[nonce] = now


def _canonical_query(query: str) -> str:
    pairs = sorted((unquote(k), unquote(v)) for k, _, v in (p.partition("=") for p in query.split("&") if p))
    return "&".join(f"{k}={quote(v, safe='~')}" for k, v in pairs)
