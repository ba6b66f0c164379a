"""The proxy's SSH listener (3023): a ProxyJump hop that routes users to nodes.

It authenticates users exactly as nodes do (Mezite user certificates only, checked by
proto.sshpolicy), offers no shells, and answers ``direct-tcpip`` only for registered
nodes, named by name, ``name.cluster`` or id. The client's destination is a *name*: the
proxy dials the node, never a host:port the client chose, so it is no open relay; and
where it dials is not the node's choice either (``server/proxy/node_dial.py``). The
user's roles (the node-access rules signed into the certificate) must allow the node
before anything is dialed. Each route is audited.

Locks are enforced as on nodes, from the same lock stream: a locked user (or role, or
incarnation) is refused at the hop, no route is opened to a locked node, and live hops
are ended when a lock comes in. (Login locks are the nodes' to enforce: the hop's user
name is not the login used on the node.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncssh
from asyncssh.stream import SSHTCPStreamSession

from proto.access import node_access_allows
from proto.addr import HostPort
from proto.clock import Clock, SystemClock
from proto.connlimit import Admission
from proto.listener import Listener
from proto.lockwatch import LockView, recheck_forever
from proto.sshpolicy import AuthRefused, CertIdentity, TrustedUserCAs, check_user_certificate
from proto.sshserver import (
    LOGIN_TIMEOUT_SECONDS,
    UNAUTHENTICATED_PER_ADDRESS,
    CountedServerConnection,
    certificate_only_options,
    listen_counted,
)
from server.proxy.node_dial import NodeDialPolicy

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 2.0
MISS_REFRESH_GAP = 0.5  # seconds between refreshes that route misses ask for
MISS_WAIT = 5.0  # how long a route request waits for that refresh
MISS_WAITERS = 256
CUT_GRACE = 2.0  # seconds a locked hop gets for the node to end its sessions first
RELAY_CHUNK = 256 * 1024


@dataclass(frozen=True)
class RoutedNode:
    id: str
    name: str
    addr: str  # what the node claims
    labels: Mapping[str, str]
    seen_from: str = ""  # where auth saw it (see server/proxy/node_dial.py)


ListNodes = Callable[[], Awaitable[Sequence[RoutedNode]]]
Relay = Callable[[asyncssh.SSHReader[bytes], asyncssh.SSHWriter[bytes]], Awaitable[None]]
Emit = Callable[..., None]


def unreachable(name: str) -> str:
    """The refusal for a node name that is unknown or that the user's roles do not
    reach (the same words for both, on every path that routes by name)."""
    return f"no node named {name[:64]!r} that you can reach (see `mez ls`)"


class NodeDirectory:
    """Registered, online nodes, refreshed from auth in the background, so that routing
    decisions are synchronous (asyncssh asks for them synchronously).

    A name the table does not have may be a node that came online since the last
    refresh (`mez ls` already lists it), so a miss asks auth again before it is refused
    (``refresh_for_miss``): all misses share the next refresh, which starts at least
    ``MISS_REFRESH_GAP`` after the previous one, so misses cannot become a flood of
    auth RPCs, and at most ``MISS_WAITERS`` wait at once."""

    def __init__(self, list_nodes: ListNodes, cluster: str) -> None:
        self._list_nodes = list_nodes
        self._cluster = cluster
        self._by_key: dict[str, RoutedNode] = {}
        self.ready = asyncio.Event()
        self._started = 0  # refreshes started, so that an older one never wins
        self._applied = 0
        self._next: asyncio.Future[None] | None = None  # the refresh misses wait for
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_miss_refresh = -MISS_REFRESH_GAP
        self._waiting = 0

    async def refresh(self) -> None:
        self._started += 1
        number = self._started
        nodes = await self._list_nodes()
        # Ids first, then names, then name.cluster, each only where no stronger key has
        # it: auth refuses names that could be another node's key (proto.host_claims.
        # name_problem), and a record from before that rule cannot take over another's.
        table: dict[str, RoutedNode] = {}
        for keys in ((n.id for n in nodes), (n.name for n in nodes),
                     (f"{n.name}.{self._cluster}" for n in nodes)):  # fmt: skip
            for key, node in zip(keys, nodes, strict=True):
                table.setdefault(key, node)
        if number > self._applied:
            self._by_key, self._applied = table, number
        self.ready.set()

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # auth briefly away: keep the last good table
                log.warning("cannot refresh nodes for routing: %s", exc)
            await asyncio.sleep(REFRESH_INTERVAL)

    def resolve(self, host: str) -> RoutedNode | None:
        return self._by_key.get(host)

    async def refresh_for_miss(self) -> None:
        """Wait (bounded) for a refresh that starts after this call."""
        if self._waiting >= MISS_WAITERS:
            return
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._refresh_next(self._next))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._waiting += 1
        try:
            await asyncio.wait_for(asyncio.shield(self._next), MISS_WAIT)
        except TimeoutError:
            log.info("no node refresh within %.0fs for a route request", MISS_WAIT)
        finally:
            self._waiting -= 1

    async def _refresh_next(self, done: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(self._last_miss_refresh + MISS_REFRESH_GAP - loop.time())
            # From here on a miss needs the refresh after this one: this may not see it.
            self._next = None
            self._last_miss_refresh = loop.time()
            await self.refresh()
        except Exception as exc:
            log.warning("cannot refresh nodes for routing: %s", exc)
        finally:
            if self._next is done:
                self._next = None
            if not done.done():
                done.set_result(None)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _Connection(CountedServerConnection):
    """Mezite's certificate policy in front of asyncssh's own checks (as on nodes)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, options: Any, router: ProxySSHRouter,
        admission: Admission | None = None,
    ) -> None:  # fmt: skip
        super().__init__(loop, options, admission)
        self.router = router
        self.identity: CertIdentity | None = None
        # Open relays, by the node they reach, so a lock on that node can end them.
        self.routes: dict[asyncssh.SSHWriter[bytes], str] = {}
        self.terminated = False
        self._cut_pending = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.router.connections.add(self)

    def connection_lost(self, exc: Exception | None = None) -> None:
        self.router.connections.discard(self)
        super().connection_lost(exc)

    def enforce(self, locks: LockView) -> None:
        """End this hop if a lock now refuses its user, and routes to locked nodes:
        after a grace period, so that the node (which has the lock too) ends the
        session first and the user reads its message; the hop cuts what the node did
        not."""
        identity = self.identity
        if identity is None or self.terminated or self._cut_pending:
            return
        if locks.refusal(identity.subject()) is None and not any(
            locks.refusal(identity.subject(node=node_id)) for node_id in self.routes.values()
        ):
            return
        self._cut_pending = True
        asyncio.get_running_loop().call_later(CUT_GRACE, self._cut, locks)

    def _cut(self, locks: LockView) -> None:
        self._cut_pending = False
        identity = self.identity
        if identity is None or self.terminated:
            return
        reason = locks.refusal(identity.subject())
        if reason is not None:
            self.terminated = True
            self.router.audit("session.terminated", user=identity.user, success=False,
                              reason=reason[:200], key_id=identity.key_id)  # fmt: skip
            self.disconnect(asyncssh.DISC_BY_APPLICATION, reason[:200])
            return
        for writer, node_id in list(self.routes.items()):
            why = locks.refusal(identity.subject(node=node_id))
            if why is not None:
                self.routes.pop(writer, None)
                self.router.audit(
                    "session.terminated", user=identity.user, success=False,
                    reason=why[:200], node_id=node_id, key_id=identity.key_id,
                )  # fmt: skip
                writer.channel.close()

    async def validate_public_key(
        self, username: str, key_data: bytes, msg: bytes, signature: bytes
    ) -> bool:
        peer = (self.get_extra_info("peername") or ("", 0))[0]
        try:
            identity = check_user_certificate(
                key_data, username, signature=signature, trusted=self.router.trusted,
                labels=None, now=self.router.clock.now(),
            )  # fmt: skip
        except AuthRefused as refused:
            self._refused(username, refused, peer)
            return False
        locked = self.router.locks.refusal(identity.subject())
        if locked is not None:
            self.send_auth_banner(f"mezite proxy: access denied: {locked}\r\n")
            lock_refusal = AuthRefused(f"locked: {locked}", key_id=identity.key_id,
                                       serial=identity.serial, user=identity.user)  # fmt: skip
            self._refused(username, lock_refusal, peer)
            return False
        if not await super().validate_public_key(username, key_data, msg, signature):
            return False
        if msg:
            self.identity = identity
        return True

    def _refused(self, username: str, refused: AuthRefused, peer: object) -> None:
        self.router.audit("auth.failed", user=refused.user, success=False,
                          login=username[:256], reason=refused.reason,
                          key_id=refused.key_id, serial=refused.serial,
                          remote_addr=str(peer))  # fmt: skip

    def check_certificate_permission(self, permission: str) -> bool:
        """A jump through the proxy is how users reach nodes at all, not port forwarding
        in the certificate's sense: routing is decided per node in connection_requested
        (forwarding on the node itself still needs permit-port-forwarding)."""
        if permission == "port-forwarding":
            return True
        return bool(super().check_certificate_permission(permission))


class _Handler(asyncssh.SSHServer):
    def __init__(self, router: ProxySSHRouter) -> None:
        self._router = router
        self._conn: _Connection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        assert isinstance(conn, _Connection)
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        return True  # always: False would let the client in unauthenticated

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # plain keys never; certificates are checked by the connection

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._router.trusted.trusts(key.public_data)

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def session_requested(self) -> bool:
        return False  # a hop, not a host: no shells, no commands

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Relay | Awaitable[SSHTCPStreamSession[bytes]]:
        if not self._reachable(self._router.directory.resolve(dest_host)):
            # Perhaps a node that came online (or got new labels) since the last
            # refresh: asyncssh awaits this, and an open failure raised in it reaches the
            # client as usual. A node the roles do not reach waits the same as none, so
            # the answer's timing tells no more than its words.
            return self._route_after_refresh(dest_host, dest_port, orig_host, orig_port)
        return self._route(dest_host, dest_port, orig_host, orig_port)

    def _reachable(self, node: RoutedNode | None) -> bool:
        assert self._conn is not None and self._conn.identity is not None
        return node is not None and node_access_allows(self._conn.identity.node_access, node.labels)

    async def _route_after_refresh(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> SSHTCPStreamSession[bytes]:
        await self._router.directory.refresh_for_miss()
        return SSHTCPStreamSession(self._route(dest_host, dest_port, orig_host, orig_port))

    def _route(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Relay:
        assert self._conn is not None and self._conn.identity is not None
        identity = self._conn.identity
        node = self._router.directory.resolve(dest_host)
        reachable = self._reachable(node)
        locked = self._router.locks.refusal(identity.subject(node=node.id)) if node else None
        allowed = reachable and locked is None
        self._router.audit(
            "proxy.route", user=identity.user, success=allowed, requested=dest_host[:256],
            node=node.name if node else "", node_id=node.id if node else "",
            key_id=identity.key_id, remote_addr=str(orig_host)[:64],
        )  # fmt: skip
        if node is None or not reachable:
            # One answer for a node that is not there and one the roles do not reach:
            # a user learns no more names from the hop than `mez ls` shows them.
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, unreachable(dest_host))
        if locked is not None:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, locked)
        conn = self._conn

        async def relay(
            reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]
        ) -> None:
            conn.routes[writer] = node.id
            try:
                await _pipe_to_node(self._router.dial.target(node.addr, node.seen_from),
                                    node, reader, writer)  # fmt: skip
            finally:
                conn.routes.pop(writer, None)

        return relay


async def _pump(read: Callable[[int], Awaitable[bytes]], write: Callable[[bytes], Any],
                drain: Callable[[], Awaitable[None]], done: Callable[[], Any]) -> None:  # fmt: skip
    try:
        while data := await read(RELAY_CHUNK):
            write(data)
            await drain()
    finally:
        with contextlib.suppress(Exception):
            done()


async def _pipe_to_node(
    target: HostPort | None,
    node: RoutedNode,
    reader: asyncssh.SSHReader[bytes],
    writer: asyncssh.SSHWriter[bytes],
) -> None:
    if target is None:
        log.warning("node %s claims %r, seen from %r: nothing the proxy may dial",
                    node.name, node.addr, node.seen_from)  # fmt: skip
        writer.close()
        return
    try:
        node_reader, node_writer = await asyncio.open_connection(target.host, target.port)
    except OSError as exc:
        log.info("cannot reach node %s at %s: %s", node.name, target, exc)
        writer.close()
        return
    try:
        await asyncio.gather(
            _pump(reader.read, node_writer.write, node_writer.drain, node_writer.write_eof),
            _pump(node_reader.read, writer.write, writer.drain, writer.write_eof),
        )
    finally:
        node_writer.close()
        writer.close()


class ProxySSHRouter:
    def __init__(
        self,
        *,
        host_key: asyncssh.SSHKey,
        host_cert: asyncssh.SSHCertificate,
        user_ca_keys: Sequence[str],
        directory: NodeDirectory,
        audit: Emit,
        clock: Clock | None = None,
        locks: LockView | None = None,
        dial: NodeDialPolicy | None = None,
        login_timeout: float = LOGIN_TIMEOUT_SECONDS,
        unauthenticated_per_address: int = UNAUTHENTICATED_PER_ADDRESS,
    ) -> None:
        self._login_timeout = login_timeout
        self._unauthenticated_per_address = unauthenticated_per_address
        self.trusted = TrustedUserCAs(user_ca_keys)
        self.directory = directory
        self.dial = dial or NodeDialPolicy()
        self.audit = audit
        self.clock = clock or SystemClock()
        self.locks = locks or LockView(self.clock, "")
        self.locks.on_change(self.enforce_locks)
        self.connections: set[_Connection] = set()
        self._recheck: asyncio.Task[None] | None = None
        self._host_key = host_key
        self._host_cert = host_cert
        self._server: Listener | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._current: asyncssh.SSHServerConnectionOptions | None = None
        self.port = 0

    def _options(self) -> asyncssh.SSHServerConnectionOptions:
        return certificate_only_options(
            owner="proxy",
            server_factory=lambda: _Handler(self),
            host_key=self._host_key,
            host_cert=self._host_cert,
            server_version="MeziteProxy",
            allow_pty=False,
            agent_forwarding=False,
            login_timeout=self._login_timeout,
        )

    def set_host_credentials(self, key: asyncssh.SSHKey, cert: asyncssh.SSHCertificate) -> None:
        """A renewed host key and certificate, used from the next connection on."""
        self._host_key, self._host_cert = key, cert
        self._current = self._options()
        log.info("proxy SSH host certificate replaced")

    async def start(self, host: str, port: int) -> None:
        self._refresher = asyncio.create_task(self.directory.run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.directory.ready.wait(), 10)
        loop = asyncio.get_running_loop()
        self._current = self._options()

        def factory(admission: Admission) -> _Connection:
            return _Connection(loop, self._current, self, admission)

        self._server = await listen_counted(
            factory, host, port, what="proxy SSH hop",
            unauthenticated_per_address=self._unauthenticated_per_address,
        )  # fmt: skip
        self._recheck = asyncio.create_task(recheck_forever(self.enforce_locks))
        self.port = self._server.port
        log.info("proxy SSH routing on %s:%d", host, self.port)

    def enforce_locks(self) -> None:
        for conn in list(self.connections):
            conn.enforce(self.locks)

    async def stop(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.directory.stop()
