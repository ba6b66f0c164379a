"""What the proxy's web API needs to know about its cluster and itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from proto.errors import BadParameter

# Upper bound for a cookie's lifetime: the auth service caps sessions at 30h anyway.
MAX_COOKIE_AGE = 30 * 3600


def validate_origin(origin: str) -> str:
    """An HTTPS origin exactly as a browser sends it in ``Origin``: scheme, host, optional
    port, nothing else. The CSRF check compares it byte for byte, so a trailing slash or
    an upper-case host here would make every browser request fail."""
    parts = urlsplit(origin)
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed or out-of-range port
    except ValueError:
        parts = urlsplit("")
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.password is not None
        or origin != origin.lower()
        or origin != f"https://{parts.netloc}"
    ):
        raise BadParameter(
            f"invalid public origin {origin[:200]!r}",
            hint="use the proxy's URL as browsers see it, e.g. https://proxy.example.com:3080",
        )
    return origin


@dataclass(frozen=True)
class ProxySettings:
    """The proxy web API's configuration, resolved and validated once."""

    cluster_name: str
    auth_addr: str
    proxy_ssh_addr: str
    ca_pins: Sequence[str]
    server_version: str
    # The only Origin accepted on cookie-authenticated state changes (and on login).
    public_origin: str
    max_body_bytes: int = 64 * 1024
    # The host X.509 CA (PEM), in ping: a client that holds only the pin selects the CA
    # from it and then verifies this proxy's certificate with it.
    ca_pem: str = ""
    session_cookie_max_age: int = 12 * 3600
    # Seconds from a request's head to the end of its body (a slow body gets 408).
    request_body_timeout: float = 30.0

    def __post_init__(self) -> None:
        # A tuple keeps the frozen object hashable and immune to the caller's list.
        object.__setattr__(self, "ca_pins", tuple(self.ca_pins))
        validate_origin(self.public_origin)
        if not 1 <= self.max_body_bytes <= 16 * 1024 * 1024:
            raise BadParameter("max_body_bytes must be between 1 byte and 16 MiB")
        if not 0 < self.request_body_timeout <= 3600:
            raise BadParameter("request_body_timeout must be between 0 and 3600 seconds")
        if not 1 <= self.session_cookie_max_age <= MAX_COOKIE_AGE:
            raise BadParameter(f"session_cookie_max_age must be 1..{MAX_COOKIE_AGE} seconds")
