"""The transport to the proxy's REST API (`/v1/webapi/`), for profiles made with
`mez login --proxy`: users then need to reach only the proxy, never auth's gRPC port.
``proto.cluster_api.WebClusterAPI`` speaks the API's calls over it.

Every request that carries a password or a session is verified against the cluster CA
that the user's pin selected, and the proxy's certificate must name the address dialled.
Errors come back in the error vocabulary, by name. The standard library's http.client
carries the calls: it imports in a quarter of httpx's time, and `mez ssh` pays for its
imports on every run (benchmark B2).
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from proto.errors import ALL_ERRORS, ConnectionProblem, Internal, MeziteError, TrustFailure

TIMEOUT = 30.0
PREFIX = "/v1/webapi/"
MAX_REPLY = 16 * 1024 * 1024  # a page of nodes is far smaller
_ERRORS = {cls.__name__: cls for cls in ALL_ERRORS}

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from proto.v1 import auth_pb2 as pb

M = TypeVar("M", bound="Message")


def _connect(web_addr: str, context: ssl.SSLContext) -> http.client.HTTPSConnection:
    from proto.addr import HostPort

    addr = HostPort.parse(web_addr, 443)
    return http.client.HTTPSConnection(addr.host, addr.port, context=context, timeout=TIMEOUT)


def _each(web_addrs: str) -> list[str]:
    """The proxies of ``a:3080,b:3080`` in the order they are tried."""
    from proto.addr import parse_addr_list

    return [str(addr) for addr in parse_addr_list(web_addrs, 443)]


def _first_answer(
    web_addrs: str,
    context: ssl.SSLContext,
    method: str,
    path: str,
    body: bytes | None,
    headers: Mapping[str, str],
    limit: int = MAX_REPLY,
) -> tuple[str, int, bytes]:
    """The exchange with the first proxy that takes the connection: a proxy that cannot
    be reached is passed over, one that fails verification is not (that is refused).
    The answer's body as it came, at most ``limit`` bytes."""
    failure: OSError | None = None
    for web_addr in _each(web_addrs):
        try:
            status, raw = _exchange(_connect(web_addr, context), method, path, body, headers, limit)
        except ssl.SSLCertVerificationError as exc:
            raise TrustFailure(
                f"the proxy at {web_addr} is not verified by the cluster CA: {exc.verify_message}",
                hint="check --proxy: the proxy's certificate must name that address",
            ) from exc
        except OSError as exc:
            failure = exc
            continue
        return web_addr, status, raw
    raise ConnectionProblem(f"cannot reach the proxy at {web_addrs}: {failure}")


def _exchange(
    conn: http.client.HTTPSConnection,
    method: str,
    path: str,
    body: bytes | None,
    headers: Mapping[str, str],
    limit: int,
) -> tuple[int, bytes]:
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        reply = conn.getresponse()
        raw = reply.read(limit + 1)
    finally:
        conn.close()
    if len(raw) > limit:
        raise ConnectionProblem("the proxy's answer is too large")
    return reply.status, raw


def _json(raw: bytes) -> object:
    """A JSON answer, or None for one that is not JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def ping(web_addr: str) -> pb.ProxyPingResponse:
    """The proxy's ping, NOT verified: discovery only (cluster name, addresses, the CA
    to select by pin). Nothing secret is sent."""
    from proto.v1 import auth_pb2 as pb

    # Not verified on purpose: we do not know the CA yet (the pin check follows).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    web_addr, status, raw = _first_answer(web_addr, context, "GET", PREFIX + "ping", None, {})
    doc = _json(raw)
    if status != 200 or not isinstance(doc, dict):
        raise ConnectionProblem(f"{web_addr} did not answer like a Mezite proxy (HTTP {status})")
    return _parse(doc, pb.ProxyPingResponse, web_addr)


def _parse(doc: Mapping[str, Any], cls: type[M], web_addr: str) -> M:
    from google.protobuf.json_format import ParseError

    from proto.webjson import from_json

    try:
        return from_json(doc, cls)
    except ParseError as exc:
        raise ConnectionProblem(
            f"{web_addr} answered with a malformed {cls.DESCRIPTOR.name}: {str(exc)[:200]}"
        ) from None


class WebTransport:
    """Verified calls to one proxy, as one session (or none)."""

    def __init__(self, web_addr: str, ca_pem: str, session_id: str | None = None) -> None:
        self.web_addr = web_addr
        self._context = ssl.create_default_context(cadata=ca_pem)  # once, for every call
        self._session_id = session_id

    def request(
        self,
        method: str,
        path: str,
        reply: type[M],
        *,
        body: Mapping[str, Any] | None = None,
        params: Sequence[tuple[str, str]] = (),
    ) -> M:
        """``method`` ``path`` with a JSON ``body``; the answer parsed as ``reply``."""
        status, doc = self._send(method, path, body, params)
        if 200 <= status < 300 and isinstance(doc, dict):
            return _parse(doc, reply, self.web_addr)
        raise _error(status, doc)

    def download(self, path: str, limit: int) -> bytes:
        """GET ``path``'s body as it is (not JSON), at most ``limit`` bytes."""
        _, status, raw = _first_answer(
            self.web_addr, self._context, "GET", PREFIX + path, None, self._headers("*/*"), limit
        )
        if 200 <= status < 300:
            return raw
        raise _error(status, _json(raw))

    def send(self, method: str, path: str) -> None:
        """``method`` ``path`` for its effect alone (204 No Content)."""
        status, doc = self._send(method, path, None, ())
        if not 200 <= status < 300:
            raise _error(status, doc)

    def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Sequence[tuple[str, str]],
    ) -> tuple[int, object]:
        headers = self._headers("application/json")
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        target = PREFIX + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        _, status, raw = _first_answer(
            self.web_addr, self._context, method, target, payload, headers
        )
        return status, _json(raw)

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if self._session_id:
            headers["Authorization"] = f"Bearer {self._session_id}"
        return headers


def _error(status: int, doc: object) -> MeziteError:
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        cls = _ERRORS.get(str(error.get("type")), Internal)
        return cls(str(error.get("message", ""))[:500])
    return Internal(f"the proxy answered HTTP {status}")
