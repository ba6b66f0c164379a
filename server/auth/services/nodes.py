"""Node RPCs: RegisterAgent (token join), RenewHostCerts, Heartbeat, ListNodes and
EmitAuditEvent."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from proto import limits
from proto.clock import Clock
from proto.errors import (
    AccessDenied,
    AlreadyExists,
    BadParameter,
    MeziteError,
    NotAuthenticated,
    NotFound,
)
from proto.event_types import known_event_type
from proto.failpoint import failpoint
from proto.host_claims import name_problem, parse_claims
from proto.kinds import AgentKind
from proto.locks import LockTarget, Subject
from proto.v1 import auth_pb2 as pb
from server.audit import new_event
from server.auth.auditing import Auditor
from server.auth.crypto.issuer import (
    HOST_CERT_TTL,
    AgentIssuer,
    keys_fingerprint,
    load_tls_public_key,
)
from server.auth.crypto.sshcert import parse_public_key
from server.auth.rbac import AccessChecker, load_checker
from server.auth.rpc.guard import Principal, PrincipalKind
from server.auth.rpc.router import CallContext
from server.auth.stores.agents import AgentRecord, AgentStore, name_claim
from server.auth.stores.iam_tokens import IAMToken
from server.auth.stores.join_tokens import TOKEN_FAILED, JoinTokens, validate_labels
from server.auth.stores.locks import (
    CLOCK_SKEW,
    SYSTEM,
    LockCache,
    audit_lock_created,
    lock_item,
    new_lock,
)
from server.auth.stores.nodes import NodeCatalog
from server.auth.stores.roles import RoleStore
from server.auth.stores.secret_tokens import PendingToken, parse_token
from server.auth.stores.users import UserStore
from server.auth.sts import AWSIdentity
from server.backend import Condition, Put

log = logging.getLogger(__name__)

MAX_EVENTS_PER_CALL = 500
_NODE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
# What an agent may report: what happened on the node, not auth-side events.
AGENT_EVENT_TYPES = frozenset(
    {
        "session.start",
        "session.end",
        "session.terminated",
        "exec",
        "port_forward",
        "sftp",
        "scp",
        "auth.failed",
    }
)

PROXY_EVENT_TYPES = frozenset({"proxy.route", "web.terminal", "auth.failed", "session.terminated"})


@dataclass(frozen=True)
class Registration:
    """A join request as checked (``NodeService.check_registration``)."""

    request: pb.RegisterAgentRequest
    name: str
    kind: AgentKind
    addrs: list[str]
    labels: dict[str, str]
    keys: str  # join_keys_fingerprint


def join_keys_fingerprint(request: pb.RegisterAgentRequest) -> str:
    """The public keys a join asks auth to certify: what makes a retried join the same."""
    return keys_fingerprint(
        request.ssh_public_key, request.tls_public_key_pem, request.tls_server_public_key_pem
    )


def validate_node_name(name: str) -> str:
    if not _NODE_NAME_RE.fullmatch(name):
        raise BadParameter(
            f"invalid node name {name[:80]!r}",
            hint="use up to 63 lower-case letters, digits, '.' and '-'",
        )
    return name


class NodeService:
    def __init__(
        self,
        *,
        issuer: AgentIssuer,
        agents: AgentStore,
        catalog: NodeCatalog,
        tokens: JoinTokens,
        users: UserStore,
        roles: RoleStore,
        locks: LockCache,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self._issuer = issuer
        self._locks = locks
        self._agents = agents
        self._catalog = catalog
        self._tokens = tokens
        self._users = users
        self._roles = roles
        self._audit = auditor
        self._clock = clock

    def check_registration(self, request: pb.RegisterAgentRequest) -> Registration:
        """Everything that can be wrong with a join request, checked before any token is
        spent or any proof is asked for (the IAM join checks the same)."""
        # Only a proxy asks for a server certificate, and only a proxy token grants
        # one: a node token cannot mint a certificate browsers would trust.
        kind = AgentKind.PROXY if request.tls_server_public_key_pem else AgentKind.NODE
        name = validate_node_name(request.name)
        why = name_problem(name, cluster=self._issuer.cluster_name)
        if kind == AgentKind.NODE and why is not None:
            raise BadParameter(f"node name {name!r} {why}", hint="pick another --name")
        parse_public_key(request.ssh_public_key)
        load_tls_public_key(request.tls_public_key_pem)
        addrs = self._claims(request.advertise_addrs, name, kind)
        if kind == AgentKind.PROXY:
            load_tls_public_key(request.tls_server_public_key_pem)
        labels = validate_labels(dict(request.labels))
        return Registration(request, name, kind, addrs, labels, join_keys_fingerprint(request))

    async def register_agent(
        self, request: pb.RegisterAgentRequest, ctx: CallContext
    ) -> pb.RegisterAgentResponse:
        """Redeem a join token. The token is spent in the same transaction that records
        the agent, so a crash leaves either both or neither; and a retry of a join whose
        reply was lost (the same name and keys, within the first token's lifetime) is
        answered again for the record it made, rather than refused for its name."""
        try:
            reg = self.check_registration(request)
            name, kind, addrs, keys = reg.name, reg.kind, reg.addrs, reg.keys
            requested_labels = reg.labels
            earlier = await self._earlier_join(name, kind, keys)
            if earlier is not None:
                return await self._join_again(earlier, request, addrs, ctx)
            if kind == AgentKind.NODE and self._catalog.by_name(name) is not None:
                raise AlreadyExists(
                    f"a node named {name!r} is already registered",
                    hint="pick another --name",
                )
            try:
                token = await self._tokens.check(request.token, kind)
            except NotAuthenticated:
                # A retry that reached another auth server before its watch delivered
                # the record: the store itself has the last word.
                earlier = await self._earlier_join(name, kind, keys, from_store=True)
                if earlier is None:
                    raise
                return await self._join_again(earlier, request, addrs, ctx)
            record = AgentRecord(
                id=str(uuid.uuid4()),
                kind=AgentKind(token.token.type),  # what the admin made the token for
                name=name,
                created=self._clock.now(),
                labels={**requested_labels, **token.token.labels},  # the token's labels win
                addrs=tuple(addrs) if kind == AgentKind.PROXY else (),
                join_token=token.token.name,
                join_hash=token.secret_hash,
                join_until=token.token.expires,
                join_keys=keys,
            )
            credentials = await self._credentials(record, request, addrs)
            failpoint("join.issued")
            conditions, claims = name_claim(record)
            try:
                await self._tokens.redeem(token, [Put(record.item()), *claims], conditions)
            except NotAuthenticated:
                if conditions and await self._agents.name_taken(record.name):
                    raise AlreadyExists(  # a concurrent join took the name first
                        f"a node named {name!r} is already registered", hint="pick another --name"
                    ) from None
                raise
        except MeziteError as err:
            self._audit.emit(
                "join.failed", reason=err.message, peer=ctx.peer_addr, node=request.name[:64]
            )
            raise
        failpoint("join.committed")
        self._audit_join(record, ctx, method="token", token_name=token.token.name)
        return pb.RegisterAgentResponse(credentials=credentials)

    async def join_by_aws(
        self, reg: Registration, token: IAMToken, who: AWSIdentity, ctx: CallContext
    ) -> pb.AgentCredentials:
        """The last step of an IAM join (``IAMJoinService``): the record and credentials,
        exactly as a token join makes them. The same instance (the same ARN) joining again
        under the same name with the same token, its data dir lost, gets its record back
        with the new keys; another identity finds the name taken."""
        named = [r for r in await self._named(reg.name, reg.kind, from_store=True)]
        again = next(
            (r for r in named if r.join_token == token.name and r.join_identity == who.arn), None
        )
        if again is not None:
            if self._locks.find(Subject(again.kind, again.id)) is not None:
                raise AccessDenied(f"{again.kind} {again.name!r} is locked")
            record = replace(again, join_keys=reg.keys)
            await self._agents.replace(again, record)
        elif named and reg.kind == AgentKind.NODE:
            raise AlreadyExists(
                f"a node named {reg.name!r} is already registered",
                hint="pick another --name (or remove the node that has it)",
            )
        else:
            record = AgentRecord(
                id=str(uuid.uuid4()),
                kind=AgentKind(token.type),
                name=reg.name,
                created=self._clock.now(),
                labels={**reg.labels, **token.labels},  # the token's labels win
                addrs=tuple(reg.addrs) if reg.kind == AgentKind.PROXY else (),
                join_token=token.name,
                join_keys=reg.keys,
                join_identity=who.arn,
            )
        credentials = await self._credentials(record, reg.request, reg.addrs)
        if again is None:
            await self._agents.create(record)
        self._audit_join(
            record, ctx, method="iam", token_name=token.name, aws_account=who.account,
            aws_arn=who.arn, rejoin=again is not None,
        )  # fmt: skip
        return credentials

    async def _named(self, name: str, kind: AgentKind, *, from_store: bool) -> list[AgentRecord]:
        if kind == AgentKind.NODE and not from_store:
            return [r for r in [self._catalog.by_name(name)] if r is not None]
        return [r for r in await self._agents.list() if r.kind == kind and r.name == name]

    async def _earlier_join(
        self, name: str, kind: AgentKind, keys: str, *, from_store: bool = False
    ) -> AgentRecord | None:
        """The record an earlier join of these very keys under ``name`` made, while that
        join's token would still be live: the only record a retry may be answered for."""
        candidates = await self._named(name, kind, from_store=from_store)
        now = self._clock.now()
        for record in candidates:
            same_keys = record.join_keys and hmac.compare_digest(record.join_keys, keys)
            if same_keys and now < record.join_until:
                return record
        return None

    async def _join_again(
        self,
        record: AgentRecord,
        request: pb.RegisterAgentRequest,
        addrs: list[str],
        ctx: CallContext,
    ) -> pb.RegisterAgentResponse:
        """Answer a retried join for the record it made. With the token that made the
        record nothing more is spent; a fresh token is spent (each token works once).
        Either way the record stays as it was (a second token cannot relabel a node)."""
        if self._locks.find(Subject(record.kind, record.id)) is not None:
            raise AccessDenied(f"{record.kind} {record.name!r} is locked")
        first = PendingToken(record.join_token, record.join_hash, record.join_until)
        try:
            same = first.redeemable(parse_token(request.token, "join token"), self._clock.now())
        except NotAuthenticated:
            raise NotAuthenticated(TOKEN_FAILED) from None
        spent = record.join_token
        if not same:
            token = await self._tokens.check(request.token, record.kind)
            await self._tokens.redeem(token, [], [Condition(record.item().key)])
            spent = token.token.name
        credentials = await self._credentials(record, request, addrs)
        self._audit_join(record, ctx, method="token", token_name=spent, retry=True)
        return pb.RegisterAgentResponse(credentials=credentials)

    def _audit_join(self, record: AgentRecord, ctx: CallContext, **fields: Any) -> None:
        self._audit.emit("join", user=record.id, node=record.name, kind=record.kind,
                         peer=ctx.peer_addr, **fields)  # fmt: skip

    async def _credentials(
        self, record: AgentRecord, request: pb.RegisterAgentRequest, addrs: list[str]
    ) -> pb.AgentCredentials:
        """What a join issues: a node's certificates name what it claims now; a proxy's,
        the addresses it joined with (what its renewals certify too)."""
        if record.kind == AgentKind.PROXY:
            addrs = list(record.addrs)
        return await self._issuer.host_credentials(
            record,
            addrs,
            request.ssh_public_key,
            request.tls_public_key_pem,
            request.tls_server_public_key_pem,
        )

    def _claims(self, addrs: Sequence[str], name: str, kind: AgentKind) -> list[str]:
        """What an agent claims as its addresses, checked (``proto.host_claims``): a
        node's hosts become principals of its host certificate. A proxy's come from an
        admin's proxy token and may be names in the cluster's domain."""
        return parse_claims(
            addrs, cluster=self._issuer.cluster_name, name=name,
            principals=kind == AgentKind.NODE,
        )  # fmt: skip

    def _node(self, principal: Principal) -> AgentRecord:
        record = self._catalog.get(principal.name)
        if principal.agent_kind != AgentKind.NODE or record is None:
            raise AccessDenied("this call is for nodes")
        return record

    async def renew_host_certs(
        self, request: pb.RenewHostCertsRequest, ctx: CallContext
    ) -> pb.RenewHostCertsResponse:
        if ctx.principal.agent_kind == AgentKind.PROXY:
            record = await self._agents.get(ctx.principal.name)
            if not request.tls_server_public_key_pem:
                raise BadParameter("a proxy renews its HTTPS server certificate too")
            if request.advertise_addrs:
                raise BadParameter("a proxy's addresses are the ones it joined with")
            addrs: list[str] = list(record.addrs)
        else:
            record = self._node(ctx.principal)
            if request.tls_server_public_key_pem:
                raise BadParameter("only a proxy gets an HTTPS server certificate")
            # What the node claims now (its addresses change: DHCP, a new --listen);
            # a node that claims nothing gets the address it heartbeats.
            presence = self._catalog.presence.get(record.id)
            claimed = list(request.advertise_addrs) or ([presence.addr] if presence else [])
            try:
                addrs = self._claims([a for a in claimed if a], record.name, AgentKind.NODE)
            except BadParameter as err:
                self._audit.emit("cert.create.failed", user=record.id, success=False,
                                 cert_type="host", node=record.name, reason=err.message,
                                 peer=ctx.peer_addr)  # fmt: skip
                raise
        credentials = await self._issuer.host_credentials(
            record,
            addrs,
            request.ssh_public_key,
            request.tls_public_key_pem,
            request.tls_server_public_key_pem,
        )
        self._audit.emit(
            "cert.create", user=record.id, cert_type="host", node=record.name, kind=record.kind
        )
        return pb.RenewHostCertsResponse(credentials=credentials)

    async def heartbeat(self, stream: Any, ctx: CallContext) -> None:
        record = self._node(ctx.principal)
        ttl = self._catalog.presence.ttl
        while (beat := await ctx.recv()) is not None:
            if self._catalog.get(record.id) is None:
                log.info("node %s (%s) was removed; ending its heartbeats", record.name, record.id)
                return
            if self._locks.find(Subject(AgentKind.NODE, record.id)) is not None:
                log.info("node %s (%s) is locked; ending its heartbeats", record.name, record.id)
                return
            if beat.name != record.name:
                raise BadParameter("a node heartbeats under its own name")
            addr = self._dial_addr(beat.addr, record.name)
            # Where auth saw the node: the proxy dials the node's port there (and its
            # claimed address only where the proxy's operator allows it).
            seen = _peer_ip(ctx.peer_addr)
            if self._catalog.presence.beat(record.id, addr, seen):
                log.info("node %s (%s) online at %s (seen from %s)", record.name, record.id,
                         addr, seen or "?")  # fmt: skip
            await ctx.send(pb.HeartbeatResponse(ttl_seconds=ttl))

    @staticmethod
    def _dial_addr(addr: str, name: str) -> str:
        if not addr:
            return ""
        (checked,) = parse_claims([addr], cluster="", name=name, principals=False)
        return checked

    async def list_nodes(
        self, request: pb.ListNodesRequest, ctx: CallContext
    ) -> pb.ListNodesResponse:
        principal = ctx.principal
        labels = validate_labels(dict(request.labels))
        if len(request.name) > limits.MAX_AGENT_ID_CHARS:
            raise BadParameter(f"name must be at most {limits.MAX_AGENT_ID_CHARS} characters")
        if principal.is_admin or principal.agent_kind == AgentKind.PROXY:
            # Admins see every node; a proxy routes to every node (checking each user's
            # node access itself, from the user's certificate).
            allowed: Any = lambda _labels: True  # noqa: E731
        elif principal.kind == PrincipalKind.AGENT:
            allowed = AccessChecker(await self._roles.get_many(principal.roles)).can_access_node
        else:
            _, checker = await load_checker(self._users, self._roles, principal.name)
            allowed = checker.can_access_node
        # A locked node is listed to no one: the proxy routes nothing to it. The locked
        # ids once per call: a walk of 50,000 nodes must not ask the lock set each time.
        locked = self._locks.snapshot().locked_nodes(self._clock.now())

        def listed(node_labels: Mapping[str, str], node_id: str) -> bool:
            return node_id not in locked and allowed(node_labels)

        views, next_token = self._catalog.online(
            labels=labels, allowed=listed, limit=request.limit, page_token=request.page_token,
            name=request.name,
        )  # fmt: skip
        response = pb.ListNodesResponse(next_page_token=next_token)
        for view in views:
            # A record's fields are encoded once (labels are a protobuf map, slow to
            # build from Python); its presence is set on each call.
            node = response.nodes.add()
            node.MergeFromString(self._catalog.encoded(view.record, _encode_record))
            node.addr, node.last_seen, node.seen_from = view.addr, view.last_seen, view.seen_from
        return response

    async def _joined(self, kinds: frozenset[str]) -> list[AgentRecord]:
        """Agents that joined with a token (not this host's own local identities)."""
        records = await self._agents.list()
        return [r for r in records if r.kind in kinds and not r.id.startswith("local-")]

    async def list_agents(
        self, request: pb.ListAgentsRequest, ctx: CallContext
    ) -> pb.ListAgentsResponse:
        kinds = _kinds(request.kind)
        agents = []
        for record in sorted(await self._joined(kinds), key=lambda r: (r.kind, r.name, r.id)):
            presence = (
                self._catalog.presence.get(record.id) if record.kind == AgentKind.NODE else None
            )
            agents.append(
                pb.Agent(
                    id=record.id,
                    kind=record.kind,
                    name=record.name,
                    created=record.created,
                    labels=dict(record.labels),
                    online=presence is not None,
                    addrs=[presence.addr] if presence else list(record.addrs),
                )
            )
        return pb.ListAgentsResponse(agents=agents)

    async def delete_agent(
        self, request: pb.DeleteAgentRequest, ctx: CallContext
    ) -> pb.DeleteAgentResponse:
        if request.kind not in JOINED_KINDS:
            raise BadParameter("kind must be node or proxy")
        kind = AgentKind(request.kind)
        wanted = request.id_or_name
        if not wanted or len(wanted) > 128:
            raise BadParameter(f"name the {kind} to remove by id or name")
        joined = await self._joined(frozenset({kind}))
        matches = [r for r in joined if r.id == wanted] or [r for r in joined if r.name == wanted]
        if not matches:
            raise NotFound(f"no {kind} {wanted[:80]!r}")
        if len(matches) > 1:
            raise BadParameter(
                f"{len(matches)} {kind}s are named {wanted!r}",
                hint="give the id (`mezctl " + kind + "s ls` shows them)",
            )
        (record,) = matches
        also = []
        if kind == AgentKind.NODE:
            # Its host certificate lives a day at most: the lock lasts as long, so the
            # node itself (which learns of it) and the proxy refuse it at once.
            lock = new_lock(
                LockTarget(node=record.id),
                reason=f"node {record.name} removed by {ctx.principal.name}",
                created_by=SYSTEM, now=self._clock.now(), ttl=HOST_CERT_TTL + CLOCK_SKEW,
            )  # fmt: skip
            also.append(Put(lock_item(lock)))
        await self._agents.remove(record, *also)
        self._catalog.presence.drop(record.id)
        self._audit.emit("agent.delete", user=ctx.principal.name, node=record.name,
                         agent_id=record.id, kind=record.kind)  # fmt: skip
        if kind == AgentKind.NODE:
            audit_lock_created(self._audit, lock, ctx.principal.name)
        return pb.DeleteAgentResponse(id=record.id)

    async def emit_audit_event(
        self, request: pb.EmitAuditEventRequest, ctx: CallContext
    ) -> pb.EmitAuditEventResponse:
        principal = ctx.principal
        if principal.agent_kind == AgentKind.PROXY:
            record = await self._agents.get(principal.name)
            allowed_types = PROXY_EVENT_TYPES
        else:
            record = self._node(principal)
            allowed_types = AGENT_EVENT_TYPES
        if len(request.events) > MAX_EVENTS_PER_CALL:
            raise BadParameter(f"at most {MAX_EVENTS_PER_CALL} events per call")
        now = self._clock.now()
        events = [self._agent_event(record, e, now, allowed_types) for e in request.events]
        for event in events:
            self._audit.log.emit(event)
        return pb.EmitAuditEventResponse()

    def _agent_event(
        self, record: AgentRecord, event: pb.AuditEvent, now: float, allowed: frozenset[str]
    ) -> Any:
        import json

        known = known_event_type(event.type)
        if event.type not in allowed or known is None:
            raise BadParameter(f"agents cannot report {event.type[:64]!r} events")
        try:
            fields = json.loads(event.fields_json or "{}")
        except ValueError as exc:
            raise BadParameter("fields_json is not JSON") from exc
        if not isinstance(fields, dict):
            raise BadParameter("fields_json must be an object")
        # Where and when are the server's to say: the node is the authenticated agent,
        # and a clock far off is replaced by ours.
        if record.kind == AgentKind.PROXY:
            fields.update(proxy_id=record.id)
        else:
            fields.update(node_id=record.id, node=record.name)
        when = event.time if abs(event.time - now) <= CLOCK_SKEW else now
        created = new_event(
            known,
            clock=_Fixed(when),
            user=event.user[:128],
            success=event.success,
            session_id=event.session_id[:64],
            **_plain(fields),
        )
        return created


def _peer_ip(peer: str) -> str:
    """The peer's IP as the proxy would dial it (an IPv4 peer of a dual-stack listener
    arrives as ``::ffff:a.b.c.d``); empty when there is none."""
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return ""
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped or ip)


JOINED_KINDS = frozenset({AgentKind.NODE, AgentKind.PROXY})


def _kinds(kind: str) -> frozenset[AgentKind]:
    if kind in JOINED_KINDS:
        return frozenset({AgentKind(kind)})
    if kind:
        raise BadParameter(f"unknown agent kind {kind[:32]!r}; use node or proxy")
    return JOINED_KINDS


class _Fixed:
    def __init__(self, at: float) -> None:
        self._at = at

    def now(self) -> float:
        return self._at


def _plain(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k)[:64]: v for k, v in fields.items()}


def _encode_record(record: AgentRecord) -> bytes:
    """The fields of a ``pb.Node`` that come from its record."""
    node = pb.Node(id=record.id, name=record.name, labels=dict(record.labels))
    return node.SerializeToString()
