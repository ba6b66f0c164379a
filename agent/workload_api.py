"""mezd's SPIFFE Workload API (`mezd start --workload-api unix:///PATH`): X.509 SVIDs and
the trust bundle for the processes on this node, over gRPC on a unix socket that anyone
may connect to. Every call is attested by the kernel (agent/attest.py) and answered with
what auth's workload rules give the process's facts (agent/workload_svids.py).

The service is the spec's ``SpiffeWorkloadAPI`` (the messages are the ``spiffe``
package's generated ones), served with grpclib, which hands the handler the connection's
socket, so SO_PEERCRED can be read; grpcio's Python server has no way to it.

- Both calls need the ``workload.spiffe.io: true`` header (else INVALID_ARGUMENT, as the
  spec says) and a caller the kernel vouches for and some rule admits (else
  PERMISSION_DENIED, and nothing is issued).
- ``FetchX509SVID`` sends the SVIDs at once, then renewed ones at half of the remaining
  lifetime, and ends with PERMISSION_DENIED once auth gives none (the rule was removed)
  or the process is no longer what it was.
- ``FetchX509Bundles`` sends the bundle, then again whenever it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.attest import Facts, attest_socket, boot_ticks
from agent.workload_svids import Issued, SVIDCache
from proto.clock import Clock, SystemClock
from proto.errors import AccessDenied, BadParameter, MeziteError, NotFound

if TYPE_CHECKING:
    import grpclib.const
    import grpclib.server

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "unix:///run/mezite/workload.sock"
HEADER = "workload.spiffe.io"
MIN_WAIT = 1.0  # seconds between renewals at the least
RETRY = 5.0  # seconds between tries while auth cannot be reached
MAX_STREAMS_PER_UID = 64  # open FetchX509SVID/FetchX509Bundles streams


def socket_path(address: str) -> Path:
    """The path in ``unix:///PATH``."""
    if not address.startswith("unix:///"):
        raise BadParameter(f"--workload-api {address[:64]!r} is not unix:///ABSOLUTE/PATH",
                           hint=f"e.g. {DEFAULT_SOCKET}")  # fmt: skip
    return Path(address[len("unix://") :])


def check_workload_api(address: str) -> None:
    """Fail early (before joining or listening) on a bad address or no spiffe package."""
    socket_path(address)
    _workload_pb2()


def _workload_pb2() -> Any:
    try:
        from spiffe._proto import workload_pb2
    except ImportError:
        raise NotFound("mezd --workload-api needs the spiffe package",
                       hint="install it with `pip install 'mezite[spiffe]'`") from None  # fmt: skip
    return workload_pb2


def _peer_transport(stream: grpclib.server.Stream[Any, Any]) -> asyncio.BaseTransport:
    # grpclib's Peer shows only addr() and cert(); the transport it wraps has the socket.
    transport = getattr(stream.peer, "_transport", None)
    if not isinstance(transport, asyncio.BaseTransport):
        raise AccessDenied("the caller's connection has no transport")
    return transport


class WorkloadAPI:
    """The handlers; ``__mapping__`` makes it a grpclib service."""

    def __init__(self, cache: SVIDCache, clock: Clock | None = None) -> None:
        self.cache = cache
        self.clock = clock or SystemClock()
        self.pb = _workload_pb2()
        # Connections that made calls: grpclib's Server.close leaves them open.
        self.transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self.streams: dict[int, int] = {}  # uid -> open streams

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        from grpclib.const import Cardinality, Handler

        pb = self.pb
        return {
            "/SpiffeWorkloadAPI/FetchX509SVID": Handler(
                self.fetch_x509_svid, Cardinality.UNARY_STREAM,
                pb.X509SVIDRequest, pb.X509SVIDResponse,
            ),
            "/SpiffeWorkloadAPI/FetchX509Bundles": Handler(
                self.fetch_x509_bundles, Cardinality.UNARY_STREAM,
                pb.X509BundlesRequest, pb.X509BundlesResponse,
            ),
        }  # fmt: skip

    def _attest(self, stream: grpclib.server.Stream[Any, Any], began: int) -> Facts:
        from grpclib.const import Status
        from grpclib.exceptions import GRPCError

        try:
            transport = _peer_transport(stream)
        except AccessDenied as exc:
            raise GRPCError(Status.PERMISSION_DENIED, f"not attested: {exc}") from None
        self.transports.add(transport)
        metadata = stream.metadata
        if metadata is None or metadata.get(HEADER) != "true":
            raise GRPCError(Status.INVALID_ARGUMENT, "security header missing from request")
        try:
            sock = transport.get_extra_info("socket")
            if sock is None or sock.family != socket.AF_UNIX:
                raise AccessDenied("the caller's connection is not a unix socket")
            return attest_socket(sock, began)
        except AccessDenied as exc:
            log.warning("workload API: refused an unattested caller: %s", exc)
            raise GRPCError(Status.PERMISSION_DENIED, f"not attested: {exc}") from None

    async def _updates(self, stream: grpclib.server.Stream[Any, Any]) -> AsyncIterator[Issued]:
        """The caller's SVIDs, again whenever they are renewed; PERMISSION_DENIED once no
        rule admits the caller (at once, or later) or it is no longer the same process."""
        from grpclib.const import Status
        from grpclib.exceptions import GRPCError

        facts = self._attest(stream, boot_ticks())
        await stream.recv_message()
        if self.streams.get(facts.uid, 0) >= MAX_STREAMS_PER_UID:
            raise GRPCError(Status.RESOURCE_EXHAUSTED, "too many open streams for this uid")
        self.streams[facts.uid] = self.streams.get(facts.uid, 0) + 1
        try:
            async for issued in self._renewals(stream, facts):
                yield issued
        finally:
            self.streams[facts.uid] -= 1
            if not self.streams[facts.uid]:
                del self.streams[facts.uid]

    async def _renewals(
        self, stream: grpclib.server.Stream[Any, Any], facts: Facts
    ) -> AsyncIterator[Issued]:
        from grpclib.const import Status
        from grpclib.exceptions import GRPCError

        last: Issued | None = None
        while True:
            try:
                issued = await self.cache.get(facts)
            except AccessDenied as exc:
                raise GRPCError(Status.PERMISSION_DENIED, str(exc)) from None
            except MeziteError as exc:
                if last is None or self.clock.now() >= last.expires:
                    raise GRPCError(Status.UNAVAILABLE, f"no SVID from auth: {exc}") from None
                log.warning("workload API: renewing for pid %d failed (%s); retrying",
                            facts.pid, exc)  # fmt: skip
                await asyncio.sleep(RETRY)
                continue
            if not issued.svids:
                log.info("workload API: no rule admits pid %d (uid %d, exe %s)%s", facts.pid,
                         facts.uid, facts.exe, " any more" if last else "")  # fmt: skip
                raise GRPCError(Status.PERMISSION_DENIED,
                                "no workload rule admits this process" +
                                (" any more" if last else ""))  # fmt: skip
            if issued is not last:
                yield issued
                last = issued
            await asyncio.sleep(max(MIN_WAIT, (issued.expires - self.clock.now()) / 2))
            again = self._attest(stream, boot_ticks())
            if again.key != facts.key or again.pid != facts.pid:
                raise GRPCError(Status.PERMISSION_DENIED, "the process changed")

    async def fetch_x509_svid(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        pb = self.pb
        async for issued in self._updates(stream):
            bundle = issued.bundle_der
            await stream.send_message(pb.X509SVIDResponse(svids=[
                pb.X509SVID(spiffe_id=s.spiffe_id, x509_svid=s.chain_der,
                            x509_svid_key=issued.key_der, bundle=bundle)
                for s in issued.svids
            ]))  # fmt: skip

    async def fetch_x509_bundles(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        pb = self.pb
        sent = b""
        async for issued in self._updates(stream):
            if issued.bundle_der != sent:
                sent = issued.bundle_der
                domain = f"spiffe://{issued.trust_domain}"
                await stream.send_message(pb.X509BundlesResponse(bundles={domain: sent}))


def _clear_stale(path: Path) -> None:
    """Remove a socket left by an earlier run; refuse one that something still serves,
    and anything that is not a socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BadParameter(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
    else:
        raise BadParameter(f"{path} is in use (another mezd?)")
    finally:
        probe.close()


class WorkloadServer:
    """The Workload API on a world-connectable unix socket, until ``close``."""

    def __init__(self, address: str, cache: SVIDCache) -> None:
        self.path = socket_path(address)
        self.api = WorkloadAPI(cache)
        self._server: grpclib.server.Server | None = None

    async def start(self) -> None:
        from grpclib.server import Server

        if not self.path.parent.exists():
            self.path.parent.mkdir(mode=0o755, parents=True)
        _clear_stale(self.path)
        server = Server([self.api])
        await server.start(path=str(self.path))
        os.chmod(self.path, 0o666)  # noqa: S103 - anyone may ask; every call is attested
        self._server = server
        log.info("SPIFFE Workload API on unix://%s", self.path)

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for transport in list(self.api.transports):
            transport.close()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # their connection_lost
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
