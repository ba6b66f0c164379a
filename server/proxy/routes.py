"""The endpoints of ``/v1/webapi/`` plus health.

Each handler: parse strictly, authenticate (and check CSRF for cookie-authenticated
changes) before touching auth, make one auth call, render its reply message as JSON
(``proto.webjson``, which `mez` parses back; the OpenAPI schemas derive from the same
messages). Authorisation is auth's job: the proxy passes the session through and maps
auth's refusal, so the two can never disagree about who may do what.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from proto.addr import HostPort
from proto.client import Metadata
from proto.errors import BadParameter, MeziteError, NotAuthenticated
from proto.v1 import auth_pb2 as pb
from proto.webjson import to_json
from server.proxy import credentials
from server.proxy.credentials import SessionCredential
from server.proxy.errors import AUTH_UNAVAILABLE, error_body, error_response, request_id_of
from server.proxy.gateway import AuthGateway
from server.proxy.metrics import ProxyMetrics
from server.proxy.settings import ProxySettings
from server.proxy.specs import (
    AUDIT_QUERY,
    CERTS_BODY,
    INVITE_BODY,
    LOGIN_BODY,
    NODES_QUERY,
    RECORDINGS_QUERY,
    SESSION_ID_PATTERN,
    SPIFFE_BODY,
)
from server.proxy.validation import parse_json_object, parse_query, read_body, require_json

if TYPE_CHECKING:
    from proto.v1.auth_pb2_grpc import AuthServiceAsyncStub

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Message)
Send = Callable[["AuthServiceAsyncStub", Metadata], Awaitable[R]]

READY_TIMEOUT = 3.0


def _client_ip(request: Request) -> str:
    # The TCP peer as uvicorn saw it; X-Forwarded-For from clients is not trusted
    # (serve_web turns uvicorn's proxy-header support off).
    return request.client.host if request.client else ""


def _is_local(host: str) -> bool:
    if host in ("", "localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def as_seen_by(addrs: str, client_host: str | None) -> str:
    """``addrs`` (HOST:PORT,...) as ping gives them to a client that reached this proxy
    by ``client_host``: a loopback or wildcard host is this machine's own view, useless
    to a client elsewhere, so it becomes the host the client used (a client on this
    machine, or one whose host is not an address, keeps them as they are)."""
    if not client_host or _is_local(client_host):
        return addrs
    try:
        HostPort.parse(f"[{client_host}]:1" if ":" in client_host else f"{client_host}:1")
    except BadParameter:
        return addrs
    seen = []
    for item in addrs.split(","):
        try:
            addr = HostPort.parse(item)
        except BadParameter:
            seen.append(item)
            continue
        seen.append(str(HostPort(client_host, addr.port)) if _is_local(addr.host) else item)
    return ",".join(dict.fromkeys(seen))


def _reply(message: Message) -> JSONResponse:
    return JSONResponse(to_json(message))


def labels_from_pairs(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key in labels:
            raise BadParameter(f"label {key!r} given more than once")
        labels[key] = value
    return labels


class WebAPI:
    """The handlers, bound to one proxy's settings, auth gateway and metrics."""

    def __init__(self, settings: ProxySettings, auth: AuthGateway, metrics: ProxyMetrics) -> None:
        self.settings = settings
        self.auth = auth
        self.metrics = metrics

    async def call(
        self,
        method: str,
        send: Send[R],
        *,
        request: Request,
        session: SessionCredential | None = None,
    ) -> R:
        """``send`` (one call of auth's ``method``) with the metadata of ``session``,
        or of the proxy itself, timed into the upstream metrics."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            metadata = self.auth.metadata(
                session.session_id if session else None, _client_ip(request)
            )
            return await send(self.auth.stub(), metadata)
        except MeziteError as err:
            outcome = type(err).__name__
            raise
        except BaseException:
            outcome = "exception"
            raise
        finally:
            self.metrics.upstream_seconds.labels(rpc=method, outcome=outcome).observe(
                time.perf_counter() - started
            )

    def session(self, request: Request) -> SessionCredential:
        session = credentials.session_from_request(request)
        credentials.check_csrf(request, session, self.settings)
        return session

    async def json_body(self, request: Request) -> bytes:
        require_json(request)
        return await read_body(request, self.settings.max_body_bytes)

    # --- unauthenticated ---------------------------------------------------

    async def ping(self, request: Request) -> Response:
        parse_query(request, ())
        s = self.settings
        return _reply(
            pb.ProxyPingResponse(
                cluster_name=s.cluster_name,
                auth_addr=as_seen_by(s.auth_addr, request.url.hostname),
                proxy_ssh_addr=as_seen_by(s.proxy_ssh_addr, request.url.hostname),
                ca_pins=s.ca_pins,
                ca_pem=s.ca_pem,
                server_version=s.server_version,
            )
        )

    async def login(self, request: Request) -> Response:
        parse_query(request, ())
        credentials.check_origin(request, self.settings)
        body = parse_json_object(await self.json_body(request), LOGIN_BODY)
        login = pb.AuthenticateLocalRequest(username=body["username"], password=body["password"])
        try:
            reply = await self.call(
                "AuthenticateLocal",
                lambda rpc, md: rpc.AuthenticateLocal(login, metadata=md),
                request=request,
            )
        except NotAuthenticated:
            self.metrics.logins.labels(result="denied").inc()
            raise
        except BaseException:
            self.metrics.logins.labels(result="error").inc()
            raise
        self.metrics.logins.labels(result="success").inc()
        self.metrics.sessions_created_minus_logged_out.inc()
        # The cookie never outlives the session it carries.
        max_age = min(self.settings.session_cookie_max_age, int(reply.expires - time.time()))
        if request.headers.getlist("origin"):
            # A browser (every browser sends Origin on a POST): the session lives in the
            # HttpOnly cookie alone, out of reach of the page's scripts.
            response = _reply(pb.AuthenticateLocalResponse(expires=reply.expires))
        else:
            response = _reply(reply)
        response.headers.append("Set-Cookie", credentials.session_cookie(reply.session_id, max_age))
        return response

    async def accept_invite(self, request: Request) -> Response:
        """Set a password with an invite (the web UI's invite page); no session."""
        parse_query(request, ())
        credentials.check_origin(request, self.settings)
        body = parse_json_object(await self.json_body(request), INVITE_BODY)
        accept = pb.AcceptInviteRequest(token=body["token"], password=body["password"])
        reply = await self.call(
            "AcceptInvite",
            lambda rpc, md: rpc.AcceptInvite(accept, metadata=md),
            request=request,
        )
        return _reply(reply)

    async def spiffe_bundle(self, request: Request) -> Response:
        parse_query(request, ())
        reply = await self.call(
            "GetSPIFFEBundle",
            lambda rpc, md: rpc.GetSPIFFEBundle(pb.GetSPIFFEBundleRequest(), metadata=md),
            request=request,
        )
        return _reply(reply)

    async def spiffe_certs(self, request: Request) -> Response:
        """AuthenticateSPIFFE for clients that reach only 3080: the SVID and its proof
        are the credential, so no session and no CSRF header (nothing ambient)."""
        parse_query(request, ())
        body = parse_json_object(await self.json_body(request), SPIFFE_BODY)
        try:
            signature = base64.b64decode(body["proof_signature"], validate=True)
        except ValueError:
            raise BadParameter("proof_signature is not base64") from None
        authenticate = pb.AuthenticateSPIFFERequest(
            svid_chain_pem=body["svid_chain_pem"], proof_signature=signature,
            proof_time=float(body["proof_time"]), ssh_public_key=body["ssh_public_key"],
        )  # fmt: skip
        reply = await self.call(
            "AuthenticateSPIFFE",
            lambda rpc, md: rpc.AuthenticateSPIFFE(authenticate, metadata=md),
            request=request,
        )
        self.metrics.certificates_issued.inc()
        return _reply(reply)

    # --- a session -----------------------------------------------------------

    async def logout(self, request: Request) -> Response:
        session = self.session(request)
        parse_query(request, ())
        try:
            await self.call(
                "Logout",
                lambda rpc, md: rpc.Logout(pb.LogoutRequest(), metadata=md),
                request=request,
                session=session,
            )
        except NotAuthenticated as err:
            # The session is already dead: still tell the browser to drop the cookie.
            response = error_response(err, request_id_of(request))
            response.headers.append("Set-Cookie", credentials.cleared_session_cookie())
            return response
        self.metrics.sessions_created_minus_logged_out.dec()
        logged_out = Response(status_code=204)
        logged_out.headers.append("Set-Cookie", credentials.cleared_session_cookie())
        return logged_out

    async def me(self, request: Request) -> Response:
        session = self.session(request)
        parse_query(request, ())
        reply = await self.call(
            "GetCurrentUser",
            lambda rpc, md: rpc.GetCurrentUser(pb.GetCurrentUserRequest(), metadata=md),
            request=request,
            session=session,
        )
        return _reply(reply)

    async def nodes(self, request: Request) -> Response:
        session = self.session(request)
        query = parse_query(request, NODES_QUERY)
        listing = pb.ListNodesRequest(
            labels=labels_from_pairs(query.get("label", [])),
            limit=query.get("limit", 0),
            page_token=query.get("page_token", ""),
            name=query.get("name", ""),
        )
        reply = await self.call(
            "ListNodes",
            lambda rpc, md: rpc.ListNodes(listing, metadata=md),
            request=request,
            session=session,
        )
        return _reply(reply)

    async def audit_events(self, request: Request) -> Response:
        session = self.session(request)
        query = parse_query(request, AUDIT_QUERY)
        search = pb.SearchAuditEventsRequest(
            start=query.get("since", 0.0),
            end=query.get("until", 0.0),
            types=query.get("type", []),
            user=query.get("user", ""),
            limit=query.get("limit", 0),
            page_token=query.get("page_token", ""),
            node=query.get("node", ""),
            newest_first=query.get("order") == "desc",
        )
        reply = await self.call(
            "SearchAuditEvents",
            lambda rpc, md: rpc.SearchAuditEvents(search, metadata=md),
            request=request,
            session=session,
        )
        return _reply(reply)

    async def certs(self, request: Request) -> Response:
        session = self.session(request)
        parse_query(request, ())
        body = parse_json_object(await self.json_body(request), CERTS_BODY)
        issue = pb.IssueUserCertsRequest(
            ssh_public_key=body["public_key"], ttl_seconds=body["ttl_seconds"]
        )
        reply = await self.call(
            "IssueUserCerts",
            lambda rpc, md: rpc.IssueUserCerts(issue, metadata=md),
            request=request,
            session=session,
        )
        self.metrics.certificates_issued.inc()
        return _reply(reply)

    async def recordings(self, request: Request) -> Response:
        session = self.session(request)
        query = parse_query(request, RECORDINGS_QUERY)
        listing = pb.ListSessionRecordingsRequest(
            user=query.get("user", ""), node=query.get("node", ""), since=query.get("since", 0.0)
        )
        reply = await self.call(
            "ListSessionRecordings",
            lambda rpc, md: rpc.ListSessionRecordings(listing, metadata=md),
            request=request,
            session=session,
        )
        return _reply(reply)

    async def session_recording(self, request: Request) -> Response:
        """The cast itself, streamed as auth streams it (asciicast v2, one event a line)."""
        session = self.session(request)
        parse_query(request, ())
        session_id = request.path_params["session_id"]
        if not re.fullmatch(SESSION_ID_PATTERN, session_id):
            raise BadParameter("the session id is a UUID")
        metadata = self.auth.metadata(session.session_id, _client_ip(request))
        wanted = pb.GetSessionRecordingRequest(session_id=session_id)
        parts = self.auth.stub().GetSessionRecording(wanted, metadata=metadata).__aiter__()
        await parts.__anext__()  # the info: a refusal is raised here, as a JSON error

        async def cast() -> AsyncIterator[bytes]:
            async for part in parts:
                yield part.data

        return StreamingResponse(
            cast(), media_type="application/x-asciicast",
            headers={"Content-Disposition": f'attachment; filename="{session_id}.cast"'},
        )  # fmt: skip

    # --- operations ----------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Ready when auth answers Ping; the proxy can do nothing useful without it."""
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await self.call(
                    "Ping",
                    lambda rpc, md: rpc.Ping(pb.PingRequest(), metadata=md),
                    request=request,
                )
        except (MeziteError, TimeoutError) as err:
            log.info("not ready: %s", err)
            return JSONResponse(error_body("ConnectionProblem", AUTH_UNAVAILABLE), status_code=503)
        return JSONResponse({"status": "ready"})
