"""Workload rules (admin) and IssueWorkloadSVIDs: the SVIDs a process on a node has
earned, by what the node's kernel attested about it. The node calls over its own mTLS
identity; auth takes the node's labels from its own record (never from the request),
matches every rule, and signs one SVID per admitting rule with the SPIFFE CA, for the
key the node made. Each issue is audited (``spiffe.svid.issue``: node, rule, uid)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from proto.clock import Clock
from proto.errors import AccessDenied
from proto.kinds import AgentKind
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.crypto.ca import Authorities
from server.auth.crypto.svid import issue_svid, load_svid_key, make_spiffe_id
from server.auth.rpc.router import CallContext
from server.auth.stores.nodes import NodeCatalog
from server.auth.stores.roles import RoleStore
from server.auth.stores.workload_rules import (
    DEFAULT_WORKLOAD_TTL,
    Facts,
    WorkloadRule,
    WorkloadRules,
    checked_rule,
)


def _message(rule: WorkloadRule) -> pb.WorkloadRule:
    message = pb.WorkloadRule(
        name=rule.name, role=rule.role, node_labels=dict(rule.node_labels),
        unix_user=rule.unix_user, exe=rule.exe, ttl_seconds=int(rule.ttl),
    )  # fmt: skip
    if rule.unix_uid is not None:
        message.unix_uid = rule.unix_uid
    if rule.unix_gid is not None:
        message.unix_gid = rule.unix_gid
    return message


class WorkloadService:
    def __init__(
        self,
        *,
        cas: Authorities,
        rules: WorkloadRules,
        roles: RoleStore,
        catalog: NodeCatalog,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self._cas = cas
        self._rules = rules
        self._roles = roles
        self._catalog = catalog
        self._audit = auditor
        self._clock = clock

    async def put_workload_rule(
        self, request: pb.PutWorkloadRuleRequest, ctx: CallContext
    ) -> pb.PutWorkloadRuleResponse:
        given = request.rule
        rule = checked_rule(
            WorkloadRule(
                name=given.name, role=given.role, node_labels=dict(given.node_labels),
                unix_uid=given.unix_uid if given.HasField("unix_uid") else None,
                unix_gid=given.unix_gid if given.HasField("unix_gid") else None,
                unix_user=given.unix_user, exe=given.exe,
                ttl=float(given.ttl_seconds or DEFAULT_WORKLOAD_TTL),
            ),
            self._cas.trust_domain,
        )  # fmt: skip
        await self._roles.get(rule.role)
        await self._rules.create(rule)
        self._audit.emit("spiffe.workload.create", user=ctx.principal.name, workload_rule=rule.name,
                         role=rule.role)  # fmt: skip
        return pb.PutWorkloadRuleResponse(rule=_message(rule))

    async def list_workload_rules(
        self, request: pb.ListWorkloadRulesRequest, ctx: CallContext
    ) -> pb.ListWorkloadRulesResponse:
        return pb.ListWorkloadRulesResponse(rules=[_message(r) for r in await self._rules.list()])

    async def delete_workload_rule(
        self, request: pb.DeleteWorkloadRuleRequest, ctx: CallContext
    ) -> pb.DeleteWorkloadRuleResponse:
        await self._rules.delete(request.name)
        self._audit.emit("spiffe.workload.delete", user=ctx.principal.name,
                         workload_rule=request.name)  # fmt: skip
        return pb.DeleteWorkloadRuleResponse()

    async def issue_workload_svids(
        self, request: pb.IssueWorkloadSVIDsRequest, ctx: CallContext
    ) -> pb.IssueWorkloadSVIDsResponse:
        record = self._catalog.get(ctx.principal.name)
        if ctx.principal.agent_kind != AgentKind.NODE or record is None:
            raise AccessDenied("workload SVIDs are for nodes")
        given = request.facts
        facts = Facts(uid=given.uid, gid=given.gid, user=given.user, exe=given.exe)
        rules = [r for r in await self._rules.list()
                 if r.applies_on(record.labels) and r.admits(facts)]  # fmt: skip
        reply = pb.IssueWorkloadSVIDsResponse(
            trust_domain=self._cas.trust_domain, bundle_pem=self._cas.spiffe_x509.cert_pem
        )
        if not rules:
            return reply
        key = load_svid_key(request.public_key_pem)
        now = self._clock.now()
        for rule in rules:
            if not await self._roles.get_many([rule.role]):
                continue  # its role was removed: it earns nothing
            spiffe_id = make_spiffe_id(self._cas.trust_domain, rule.role, rule.name)
            cert = issue_svid(self._cas.spiffe_x509, key, spiffe_id, now=now, ttl=rule.ttl)
            reply.svids.append(pb.WorkloadSVID(
                rule=rule.name, spiffe_id=str(spiffe_id),
                svid_chain_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                expires=cert.not_valid_after_utc.timestamp(),
            ))  # fmt: skip
            self._audit.emit(
                "spiffe.svid.issue", user=record.id, node=record.name, workload_rule=rule.name,
                uid=facts.uid, pid=given.pid, spiffe_id=str(spiffe_id),
                serial=format(cert.serial_number, "x"),
            )  # fmt: skip
        return reply
