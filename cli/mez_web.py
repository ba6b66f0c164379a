"""`mez` through the proxy's REST API (`/v1/webapi/`), for profiles made with
`mez login --proxy`: users then need to reach only the proxy, never auth's gRPC port.

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
from typing import Any

from proto.errors import ALL_ERRORS, ConnectionProblem, Internal, MeziteError, TrustFailure

TIMEOUT = 30.0
PREFIX = "/v1/webapi/"
MAX_REPLY = 16 * 1024 * 1024  # a page of nodes is far smaller
_ERRORS = {cls.__name__: cls for cls in ALL_ERRORS}


def _connect(web_addr: str, context: ssl.SSLContext) -> http.client.HTTPSConnection:
    from proto.addr import HostPort

    addr = HostPort.parse(web_addr, 443)
    return http.client.HTTPSConnection(addr.host, addr.port, context=context, timeout=TIMEOUT)


def _exchange(
    conn: http.client.HTTPSConnection,
    method: str,
    path: str,
    body: bytes | None,
    headers: Mapping[str, str],
) -> tuple[int, object]:
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        reply = conn.getresponse()
        raw = reply.read(MAX_REPLY + 1)
    finally:
        conn.close()
    if len(raw) > MAX_REPLY:
        raise ConnectionProblem("the proxy's answer is too large")
    try:
        return reply.status, json.loads(raw)
    except ValueError:
        return reply.status, None


def ping(web_addr: str) -> dict[str, Any]:
    """The proxy's ping, NOT verified: discovery only (cluster name, addresses, the CA
    to select by pin). Nothing secret is sent."""
    # Not verified on purpose: we do not know the CA yet (the pin check follows).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        status, doc = _exchange(_connect(web_addr, context), "GET", PREFIX + "ping", None, {})
    except OSError as exc:
        raise ConnectionProblem(f"cannot reach the proxy at {web_addr}: {exc}") from exc
    if status != 200 or not isinstance(doc, dict):
        raise ConnectionProblem(f"{web_addr} did not answer like a Mezite proxy (HTTP {status})")
    return doc


class WebAPI:
    def __init__(self, web_addr: str, ca_pem: str, session_id: str | None = None) -> None:
        self.web_addr = web_addr
        self._context = ssl.create_default_context(cadata=ca_pem)  # once, for every call
        self._session_id = session_id

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self._session_id:
            headers["Authorization"] = f"Bearer {self._session_id}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        target = PREFIX + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            status, doc = _exchange(
                _connect(self.web_addr, self._context), method, target, payload, headers
            )
        except ssl.SSLCertVerificationError as exc:
            raise TrustFailure(
                f"the proxy at {self.web_addr} is not verified by the cluster CA: "
                f"{exc.verify_message}",
                hint="check --proxy: the proxy's certificate must name that address",
            ) from exc
        except OSError as exc:
            raise ConnectionProblem(f"cannot reach the proxy at {self.web_addr}: {exc}") from exc
        if status == 204:  # logout: nothing to say
            return {}
        if 200 <= status < 300 and isinstance(doc, dict):
            return doc
        raise _error(status, doc)

    def login(self, user: str, password: str) -> str:
        doc = self._request("POST", "login", body={"username": user, "password": password})
        return str(doc["session_id"])

    def certs(self, public_key: str, ttl: int) -> dict[str, Any]:
        return self._request("POST", "certs", body={"public_key": public_key, "ttl_seconds": ttl})

    def nodes(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = ""
        while True:
            params: list[tuple[str, str]] = [("label", f"{k}={v}") for k, v in labels.items()]
            if page:
                params.append(("page_token", page))
            doc = self._request("GET", "nodes", params=params)
            found += doc["nodes"]
            page = doc.get("next_page_token") or ""
            if not page:
                return found

    def me(self) -> dict[str, Any]:
        return self._request("GET", "me")

    def logout(self) -> None:
        self._request("DELETE", "session")


def _error(status: int, doc: object) -> MeziteError:
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        cls = _ERRORS.get(str(error.get("type")), Internal)
        return cls(str(error.get("message", ""))[:500])
    return Internal(f"the proxy answered HTTP {status}")
