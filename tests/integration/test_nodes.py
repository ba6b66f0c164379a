"""Node join, presence and listing against a real auth server, with the agent's own
join and heartbeat code as the client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent.identity import NodeIdentity
from agent.join import JoinRequest, join
from agent.presence import Heartbeat
from proto.client import AsyncAuthClient, AuthClient, ClientIdentity
from proto.clock import FakeClock
from proto.errors import AlreadyExists, NotAuthenticated, TrustFailure
from proto.keys import new_node_keys
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import add_user, audit_events, keys_under, login
from tests.servers import LoopThread, RunningAuth


def new_token(auth: RunningAuth, type: str = "node", ttl: int = 600, **labels: str) -> str:
    with auth.admin() as admin:
        reply = admin.rpc.CreateToken(
            pb.CreateTokenRequest(type=type, ttl_seconds=ttl, labels=labels)
        )
    return str(reply.token)


def join_node(
    auth: RunningAuth, data_dir: Path, name: str, token: str | None = None, **labels: str
) -> NodeIdentity:
    assert auth.server.cas is not None
    request = JoinRequest(
        token=token or new_token(auth, **labels),
        auth_server=auth.addr,
        ca_pin=auth.server.cas.host_x509.pin,
        name=name,
        labels={},
        advertise_addrs=["127.0.0.1:3022"],
    )
    return join(request, data_dir)


def register(auth: RunningAuth, token: str, name: str) -> pb.RegisterAgentResponse:
    keys = new_node_keys()
    with auth.client() as anon:
        return anon.rpc.RegisterAgent(
            pb.RegisterAgentRequest(
                token=token,
                name=name,
                ssh_public_key=keys.ssh_public_line,
                tls_public_key_pem=keys.tls_public_pem,
            ),
        )


def test_join_stores_a_private_identity(auth: RunningAuth, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import (
        SSHCertificate,
        SSHCertificateType,
        load_ssh_public_identity,
    )

    ident = join_node(auth, tmp_path / "node", "web-1", env="prod")
    assert ident.labels == {"env": "prod"} and ident.cluster_name == "test-cluster"
    assert (tmp_path / "node").stat().st_mode & 0o777 == 0o700
    for f in (tmp_path / "node").iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f
    cert = load_ssh_public_identity(ident.ssh_host_cert.encode())
    assert isinstance(cert, SSHCertificate) and cert.type is SSHCertificateType.HOST
    assert sorted(cert.valid_principals) == sorted(
        [ident.agent_id.encode(), b"web-1", b"web-1.test-cluster", b"127.0.0.1"]
    )
    assert [e.type for e in audit_events(auth, "join")] == ["join"]
    with pytest.raises(AlreadyExists, match="already joined"):
        join_node(auth, tmp_path / "node", "web-1")


def test_token_race_has_exactly_one_winner(auth: RunningAuth) -> None:
    token = new_token(auth)

    def attempt(i: int) -> str:
        try:
            register(auth, token, f"race-{i}")
        except NotAuthenticated:
            return "refused"
        return "joined"

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(attempt, range(50)))
    assert outcomes.count("joined") == 1 and outcomes.count("refused") == 49
    joined = [k for k in keys_under(auth, "agents/") if not k.startswith("agents/local-admin")]
    assert len(joined) == 1
    assert keys_under(auth, "tokens/") == []


def test_bad_tokens_get_one_error_and_change_nothing(auth: RunningAuth, clock: FakeClock) -> None:
    kept = new_token(auth)
    deleted = new_token(auth)
    with auth.admin() as admin:
        admin.rpc.DeleteToken(pb.DeleteTokenRequest(name=deleted.split(".")[0]))
    expiring = new_token(auth, ttl=60)
    used = new_token(auth)
    register(auth, used, "first")
    clock.advance(61)
    messages = set()
    forged = kept.split(".")[0] + "." + "A" * 43
    for token in (deleted, expiring, used, "junk", forged):
        with pytest.raises(NotAuthenticated) as info:
            register(auth, token, "n1")
        messages.add(info.value.message)
    assert messages == {"invalid, expired or already used join token"}
    assert len(keys_under(auth, "agents/")) == 2  # local-admin and "first"
    assert keys_under(auth, "tokens/") == [f"tokens/{kept.split('.')[0]}"]
    assert len(audit_events(auth, "join.failed")) == 5


def test_a_bad_request_does_not_spend_the_token(auth: RunningAuth) -> None:
    token = new_token(auth)
    from proto.errors import BadParameter

    with pytest.raises(BadParameter):
        register(auth, token, "Not A Valid Name")
    assert register(auth, token, "good-name").credentials.agent_id


def test_pin_mismatch_is_refused_before_the_token_is_sent(
    auth: RunningAuth, tmp_path: Path
) -> None:
    token = new_token(auth)
    request = JoinRequest(
        token=token, auth_server=auth.addr, ca_pin="sha256:" + "ab" * 32,
        name="n1", labels={}, advertise_addrs=[],
    )  # fmt: skip
    with pytest.raises(TrustFailure):
        join(request, tmp_path / "node")
    assert not (tmp_path / "node").exists()  # nothing left behind, join keys included
    assert audit_events(auth, "join.failed") == []  # the server never saw the token
    assert register(auth, token, "n1").credentials.agent_id  # and it still works


class Beating:
    """A node's real heartbeat loop, on a loop thread of its own."""

    def __init__(self, auth: RunningAuth) -> None:
        self.auth = auth
        self.loop = LoopThread()
        self._stops: list[object] = []

    def start(self, ident: NodeIdentity, addr: str = "127.0.0.1:3022") -> Heartbeat:
        async def go() -> Heartbeat:
            client = AsyncAuthClient(
                self.auth.addr,
                ident.tls_ca_pem.encode(),
                ClientIdentity(
                    agent_id=ident.agent_id,
                    cert_pem=ident.tls_cert_pem.encode(),
                    key_pem=ident.tls_key_pem.encode(),
                ),
            )
            beat = Heartbeat(lambda: client, ident.name, lambda: addr, 0.05)
            task = asyncio.get_running_loop().create_task(beat.run())
            self._stops.append((task, client))
            await asyncio.wait_for(beat.connected.wait(), 10)
            return beat

        return self.loop.run(go())

    def close(self) -> None:
        async def stop() -> None:
            for task, client in self._stops:  # type: ignore[misc]
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await client.close()

        self.loop.run(stop())
        self.loop.close()


def _node_names(client: AuthClient) -> list[str]:
    return [n.name for n in client.rpc.ListNodes(pb.ListNodesRequest()).nodes]


def test_heartbeats_list_nodes_and_expiry_removes_them(
    auth: RunningAuth, tmp_path: Path, clock: FakeClock
) -> None:
    ident = join_node(auth, tmp_path / "n", "web-1", env="prod")
    with auth.admin() as admin:
        assert _node_names(admin) == []  # registered but never seen
        beating = Beating(auth)
        try:
            beat = beating.start(ident)
            (node,) = admin.rpc.ListNodes(pb.ListNodesRequest()).nodes
            assert (node.name, node.id, node.addr) == ("web-1", ident.agent_id, "127.0.0.1:3022")
            assert dict(node.labels) == {"env": "prod"}
            assert beat.acks >= 1
            # Beats are kept in memory: the backend holds the record, not a write per beat.
            before = auth.backend_call(lambda b: b.get("agents/" + ident.agent_id)).revision
            beating.loop.run(asyncio.sleep(0.3))
            after = auth.backend_call(lambda b: b.get("agents/" + ident.agent_id)).revision
            assert before == after
        finally:
            beating.close()
        clock.advance(91)
        assert _node_names(admin) == []


def add_dev_only_user(auth: RunningAuth, name: str) -> None:
    """A user whose one role reaches the nodes labelled env=dev only."""
    role = pb.Role(
        name="dev-only",
        allow=pb.RoleConditions(
            logins=["{{internal.logins}}"], node_labels={"env": pb.LabelValues(values=["dev"])}
        ),
    )
    with auth.admin() as admin:
        admin.rpc.UpsertRole(pb.UpsertRoleRequest(role=role))
    add_user(auth, name, roles=("dev-only",))


def test_list_nodes_is_filtered_by_role_labels(auth: RunningAuth, tmp_path: Path) -> None:
    add_dev_only_user(auth, "dana")
    beating = Beating(auth)
    try:
        for name, env in (("dev-1", "dev"), ("prod-1", "prod"), ("dev-2", "dev")):
            beating.start(join_node(auth, tmp_path / name, name, env=env))
        with login(auth, "dana") as dana:
            assert _node_names(dana) == ["dev-1", "dev-2"]
        with auth.admin() as admin:
            assert _node_names(admin) == ["dev-1", "dev-2", "prod-1"]
            page = admin.rpc.ListNodes(pb.ListNodesRequest(limit=2))
            assert [n.name for n in page.nodes] == ["dev-1", "dev-2"]
            rest = admin.rpc.ListNodes(
                pb.ListNodesRequest(limit=2, page_token=page.next_page_token)
            )
            assert [n.name for n in rest.nodes] == ["prod-1"] and rest.next_page_token == ""
            only = admin.rpc.ListNodes(pb.ListNodesRequest(labels={"env": "prod"}))
            assert [n.name for n in only.nodes] == ["prod-1"]
    finally:
        beating.close()


def test_list_nodes_by_name_or_id(auth: RunningAuth, tmp_path: Path) -> None:
    """What `mez ssh NAME` asks: one node, found by exact name or id, under the same
    role and online rules as the full listing."""
    from proto.errors import BadParameter

    add_dev_only_user(auth, "dora")
    beating = Beating(auth)
    try:
        idents = {}
        for name, env in (("dev-1", "dev"), ("dev-10", "dev"), ("prod-1", "prod")):
            idents[name] = join_node(auth, tmp_path / name, name, env=env)
            beating.start(idents[name])
        join_node(auth, tmp_path / "dev-2", "dev-2", env="dev")  # registered, never online

        def named(client: AuthClient, name: str, **labels: str) -> list[str]:
            request = pb.ListNodesRequest(name=name, labels=labels)
            return [n.name for n in client.rpc.ListNodes(request).nodes]

        with login(auth, "dora") as dora:
            assert named(dora, "dev-1") == ["dev-1"]  # exact: not dev-10
            assert named(dora, idents["dev-10"].agent_id) == ["dev-10"]
            assert named(dora, "DEV-1") == [] and named(dora, "dev") == []
            # Not hers to see: the same empty answer as for no such node.
            assert named(dora, "prod-1") == [] == named(dora, idents["prod-1"].agent_id)
            assert named(dora, "dev-2") == [] and named(dora, "nope") == []
            with pytest.raises(BadParameter):
                named(dora, "x" * 129)
        with auth.admin() as admin:
            assert named(admin, "prod-1") == ["prod-1"]
            assert named(admin, "prod-1", env="dev") == []
            assert _node_names(admin) == ["dev-1", "dev-10", "prod-1"]  # nothing changed
    finally:
        beating.close()


def test_nodes_report_audit_events_under_their_own_name(auth: RunningAuth, tmp_path: Path) -> None:
    ident = join_node(auth, tmp_path / "n", "web-1")
    node = auth.client(
        ClientIdentity(
            agent_id=ident.agent_id,
            cert_pem=ident.tls_cert_pem.encode(),
            key_pem=ident.tls_key_pem.encode(),
        )
    )
    fields = json.dumps({"command": "id -un", "exit_code": 0, "node": "forged"})
    with node:
        event = pb.AuditEvent(type="exec", user="alice", fields_json=fields)
        node.rpc.EmitAuditEvent(pb.EmitAuditEventRequest(events=[event]))
        from proto.errors import BadParameter

        with pytest.raises(BadParameter):
            node.rpc.EmitAuditEvent(
                pb.EmitAuditEventRequest(events=[pb.AuditEvent(type="user.login", user="x")]),
            )
    (event,) = audit_events(auth, "exec")
    recorded = json.loads(event.fields_json)
    assert event.user == "alice" and recorded["node"] == "web-1"
    assert recorded["node_id"] == ident.agent_id and recorded["command"] == "id -un"
    assert audit_events(auth, "user.login") == []


def test_host_certificates_are_renewed_over_mtls(auth: RunningAuth, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import (
        SSHCertificate,
        load_ssh_public_identity,
    )

    from proto.errors import AccessDenied

    ident = join_node(auth, tmp_path / "n", "web-1")
    keys = new_node_keys()
    request = pb.RenewHostCertsRequest(
        ssh_public_key=keys.ssh_public_line, tls_public_key_pem=keys.tls_public_pem
    )
    node = ClientIdentity(
        agent_id=ident.agent_id,
        cert_pem=ident.tls_cert_pem.encode(),
        key_pem=ident.tls_key_pem.encode(),
    )
    with auth.client(node) as client:
        creds = client.rpc.RenewHostCerts(request).credentials
    cert = load_ssh_public_identity(creds.ssh_host_certificate.encode())
    assert isinstance(cert, SSHCertificate)
    assert ident.agent_id.encode() in cert.valid_principals
    old = load_ssh_public_identity(ident.ssh_host_cert.encode())
    assert isinstance(old, SSHCertificate) and cert.serial != old.serial
    # Only the node itself: not the admin, not anonymous.
    with auth.admin() as admin, pytest.raises(AccessDenied):
        admin.rpc.RenewHostCerts(request)
    with auth.client() as anon, pytest.raises(NotAuthenticated):
        anon.rpc.RenewHostCerts(request)


def _principals(cert_line: str) -> set[str]:
    from cryptography.hazmat.primitives.serialization import (
        SSHCertificate,
        load_ssh_public_identity,
    )

    cert = load_ssh_public_identity(cert_line.encode())
    assert isinstance(cert, SSHCertificate)
    return {p.decode() for p in cert.valid_principals}


def _node_client(auth: RunningAuth, ident: NodeIdentity) -> AuthClient:
    return auth.client(
        ClientIdentity(
            agent_id=ident.agent_id,
            cert_pem=ident.tls_cert_pem.encode(),
            key_pem=ident.tls_key_pem.encode(),
        )
    )


def _renewal(*addrs: str) -> pb.RenewHostCertsRequest:
    keys = new_node_keys()
    return pb.RenewHostCertsRequest(
        ssh_public_key=keys.ssh_public_line,
        tls_public_key_pem=keys.tls_public_pem,
        advertise_addrs=list(addrs),
    )


def test_renewal_certifies_the_addresses_the_node_claims_now(
    auth: RunningAuth, tmp_path: Path
) -> None:
    ident = join_node(auth, tmp_path / "n", "web-1")
    own = {ident.agent_id, "web-1", "web-1.test-cluster"}
    assert _principals(ident.ssh_host_cert) == own | {"127.0.0.1"}
    with _node_client(auth, ident) as node:
        moved = node.rpc.RenewHostCerts(
            _renewal("10.0.0.5:3022", "[FD00::5]:3022", "Web-1.Corp:22")
        )
        assert _principals(moved.credentials.ssh_host_certificate) == own | {
            "10.0.0.5", "fd00::5", "web-1.corp"
        }  # fmt: skip
        again = node.rpc.RenewHostCerts(_renewal("10.0.0.6:3022"))
        assert _principals(again.credentials.ssh_host_certificate) == own | {"10.0.0.6"}


@pytest.mark.parametrize(
    "claims",
    [
        ["proxy:3022"],
        ["web-2.test-cluster:3022"],
        ["10.0.0.5:3022", "*.corp:22"],
        [f"10.0.0.{i}:22" for i in range(17)],
    ],
)
def test_bad_claims_are_refused_and_change_nothing(
    auth: RunningAuth, tmp_path: Path, claims: list[str]
) -> None:
    from proto.errors import BadParameter

    ident = join_node(auth, tmp_path / "n", "web-1")
    record = auth.backend_call(lambda b: b.get("agents/" + ident.agent_id))
    certs_before = len(audit_events(auth, "cert.create"))
    with _node_client(auth, ident) as node, pytest.raises(BadParameter, match="advertised"):
        node.rpc.RenewHostCerts(_renewal(*claims))
    assert len(audit_events(auth, "cert.create")) == certs_before
    (refused,) = audit_events(auth, "cert.create.failed")
    assert "advertised" in json.loads(refused.fields_json)["reason"]
    after = auth.backend_call(lambda b: b.get("agents/" + ident.agent_id))
    assert after.revision == record.revision
    # The same claims at join: refused before the token is spent, nothing registered.
    token = new_token(auth)
    agents = keys_under(auth, "agents/")
    keys = new_node_keys()
    with auth.client() as anon, pytest.raises(BadParameter, match="advertised"):
        anon.rpc.RegisterAgent(
            pb.RegisterAgentRequest(
                token=token, name="web-3", advertise_addrs=claims,
                ssh_public_key=keys.ssh_public_line, tls_public_key_pem=keys.tls_public_pem,
            )
        )  # fmt: skip
    assert keys_under(auth, "agents/") == agents
    assert audit_events(auth, "join.failed")
    assert register(auth, token, "web-3").credentials.agent_id


def test_auth_records_where_it_saw_a_node(auth: RunningAuth, tmp_path: Path) -> None:
    ident = join_node(auth, tmp_path / "n", "web-1")
    beating = Beating(auth)
    try:
        beating.start(ident, addr="10.9.9.9:3022")  # it claims; auth saw loopback
        with auth.admin() as admin:
            (node,) = admin.rpc.ListNodes(pb.ListNodesRequest()).nodes
        assert (node.addr, node.seen_from) == ("10.9.9.9:3022", "127.0.0.1")
    finally:
        beating.close()
