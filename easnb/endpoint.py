"""Turn what a person pastes into a gRPC target.

>>> parse_endpoint("http://grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com/").target
'grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com:80'
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import EndpointError
from .refusals import flag

#: The port EAS's gateway listens on, and so the one used when none is given.
DEFAULT_PORT = 80
TLS_PORT = 443
_SCHEMES = {"http": False, "grpc": False, "https": True, "grpcs": True}
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
EAS_DOMAIN = ".pai-eas.aliyuncs.com"


class EndpointWarning(UserWarning):
    """An endpoint that parses but is probably not what was meant."""


@dataclass(frozen=True)
class Endpoint:
    """A host, a port and whether to use TLS."""

    host: str
    port: int
    tls: bool = False

    @property
    def target(self) -> str:
        """``host:port`` as gRPC wants it, IPv6 in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_vpc(self) -> bool:
        """Whether this is an EAS VPC address, reachable only from inside its VPC."""
        return ".vpc." in self.host

    def __str__(self) -> str:
        return self.target


def _fail(text: str, problem: str) -> EndpointError:
    return EndpointError(f"Endpoint {text!r} is not valid: {problem}.")


def _check_host(text: str, host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.replace(".", "").isdigit():
        raise _fail(text, f"{host!r} is not an IP address")
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise _fail(text, f"{host!r} is not a host name")
    return host.rstrip(".").lower()


def parse_endpoint(text: str, tls: bool | None = None) -> Endpoint:
    """Parse a console address, ``host``, ``host:port``, ``https://host/`` or ``[::1]:port``.

    Without a port, plain text goes to port 80 (the EAS gateway) and TLS to 443.
    ``tls`` overrides what the scheme implies.
    """
    if not isinstance(text, str):
        raise EndpointError(f"The endpoint must be a string, not {type(text).__name__}.")
    if tls is not None:
        tls = flag(tls, "tls")
    original = text
    text = text.strip()
    if not text:
        raise _fail(original, "it is empty")
    if any(ch.isspace() for ch in text):
        raise _fail(original, "it contains a space")
    scheme_tls = False
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() not in _SCHEMES:
            raise _fail(original, f"unknown scheme {scheme!r} (use http:// or https://, or none)")
        scheme_tls = _SCHEMES[scheme.lower()]
    else:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            rest = text
        else:
            rest = f"[{text}]"
    if "@" in rest.split("/", 1)[0]:
        # Never echo what was pasted: the part before '@' may be a password.
        shown = f"{text.split('://')[0]}://***@..." if "://" in text else "***@..."
        raise _fail(shown, "it contains a user name or password; pass the token as token=...")
    try:
        parts = urlsplit(f"//{rest}")
    except ValueError as exc:
        raise _fail(original, f"bad address ({exc})") from None
    if not parts.netloc:
        raise _fail(original, "it has no host name")
    try:
        port = parts.port
        host = parts.hostname
    except ValueError as exc:  # out-of-range or non-numeric port
        raise _fail(original, f"bad port or address ({exc})") from None
    if not host:
        raise _fail(original, "it has no host name")
    if parts.netloc.endswith(":"):
        raise _fail(original, "the port after ':' is missing")
    if parts.netloc.startswith("["):
        # Python 3.10's urlsplit accepts any text in brackets; only an IPv6 address belongs there
        inside = parts.netloc[1:].partition("]")[0]
        try:
            ipaddress.IPv6Address(inside.partition("%")[0])
        except ValueError:
            raise _fail(original, f"{inside!r} in brackets is not an IPv6 address") from None
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise EndpointError(
            f"Endpoint {original!r} is not valid: it has a path ({parts.path or '?' + parts.query}). "
            "A gRPC endpoint is a host and a port only.",
            hint="An address like http://<uid>.<region>.pai-eas.aliyuncs.com/api/predict/<service> is the HTTP "
            "shared gateway. gRPC calls go to the service's own domain on port 80: "
            "<service>.<uid>.<region>.pai-eas.aliyuncs.com:80 (the console's call information shows it; "
            "'_' in the service name becomes '-').",
        )
    if port == 0:
        raise _fail(original, "port 0 cannot be connected to")
    use_tls = scheme_tls if tls is None else tls
    if port is None:
        port = TLS_PORT if use_tls else DEFAULT_PORT
    checked = _check_host(original, host)
    if checked.endswith(EAS_DOMAIN) and port not in (DEFAULT_PORT, TLS_PORT):
        warnings.warn(
            f"{checked} is a PAI-EAS address, whose gateway listens on port 80 (not {port}): "
            f"use {checked}:80 unless you know otherwise.",
            EndpointWarning,
            stacklevel=3,
        )
    return Endpoint(checked, port, use_tls)
