"""`mez` through the proxy's REST API (`/v1/webapi/`), for profiles made with
`mez login --proxy`: users then need to reach only the proxy, never auth's gRPC port.

Every request that carries a password or a session is verified against the cluster CA
that the user's pin selected, and the proxy's certificate must name the address dialled.
Errors come back in the error vocabulary, by name.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from proto.errors import ALL_ERRORS, ConnectionProblem, Internal, MeziteError

TIMEOUT = 30.0
_ERRORS = {cls.__name__: cls for cls in ALL_ERRORS}


def ping(web_addr: str) -> dict[str, Any]:
    """The proxy's ping, NOT verified: discovery only (cluster name, addresses, the CA
    to select by pin). Nothing secret is sent."""
    import httpx

    try:
        # Not verified on purpose: we do not know the CA yet (the pin check follows).
        reply = httpx.get(f"https://{web_addr}/v1/webapi/ping", verify=False, timeout=10)  # noqa: S501
        reply.raise_for_status()
        doc = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ConnectionProblem(f"cannot reach the proxy at {web_addr}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConnectionProblem(f"{web_addr} did not answer like a Mezite proxy")
    return doc


class WebAPI:
    def __init__(self, web_addr: str, ca_pem: str, session_id: str | None = None) -> None:
        self.web_addr = web_addr
        self._ca_pem = ca_pem
        self._session_id = session_id

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Any = None,
    ) -> dict[str, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {self._session_id}"} if self._session_id else {}
        context = ssl.create_default_context(cadata=self._ca_pem)
        try:
            with httpx.Client(verify=context, timeout=TIMEOUT) as client:
                reply = client.request(
                    method,
                    f"https://{self.web_addr}/v1/webapi/{path}",
                    json=body,
                    params=params,
                    headers=headers,
                )
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError) or "CERTIFICATE" in str(exc):
                from proto.errors import TrustFailure

                raise TrustFailure(
                    f"the proxy at {self.web_addr} is not verified by the cluster CA: {exc}",
                    hint="check --proxy: the proxy's certificate must name that address",
                ) from exc
            raise ConnectionProblem(f"cannot reach the proxy at {self.web_addr}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ConnectionProblem(f"the proxy at {self.web_addr} failed: {exc}") from exc
        try:
            doc = reply.json()
        except ValueError:
            doc = None
        if reply.is_success and isinstance(doc, dict):
            return doc
        raise _error(reply.status_code, doc)

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
