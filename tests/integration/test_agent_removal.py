"""ListAgents and DeleteAgent: an admin sees what joined and removes a node or proxy,
whose calls auth then refuses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent.identity import NodeIdentity
from proto.client import ClientIdentity
from proto.errors import AccessDenied, BadParameter, NotAuthenticated, NotFound
from proto.keys import new_node_keys
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import add_user, audit_events, keys_under, login
from tests.integration.test_nodes import Beating, join_node, new_token, register
from tests.servers import RunningAuth


def identity(ident: NodeIdentity) -> ClientIdentity:
    return ClientIdentity(
        agent_id=ident.agent_id,
        cert_pem=ident.tls_cert_pem.encode(),
        key_pem=ident.tls_key_pem.encode(),
    )


def renew_request() -> pb.RenewHostCertsRequest:
    keys = new_node_keys()
    return pb.RenewHostCertsRequest(
        ssh_public_key=keys.ssh_public_line, tls_public_key_pem=keys.tls_public_pem
    )


def test_list_shows_joined_nodes_and_proxies_only(auth: RunningAuth, tmp_path: Path) -> None:
    web = join_node(auth, tmp_path / "web", "web-1", env="prod")
    keys = new_node_keys()
    from proto.keys import new_tls_key

    with auth.client() as anon:
        proxy_id = anon.rpc.RegisterAgent(
            pb.RegisterAgentRequest(
                token=new_token(auth, type="proxy"),
                name="edge-1",
                advertise_addrs=["proxy.example.com:443"],
                ssh_public_key=keys.ssh_public_line,
                tls_public_key_pem=keys.tls_public_pem,
                tls_server_public_key_pem=new_tls_key().public_pem,
            ),
        ).credentials.agent_id
    with auth.admin() as admin:
        everything = admin.rpc.ListAgents(pb.ListAgentsRequest()).agents
        nodes = admin.rpc.ListAgents(pb.ListAgentsRequest(kind="node")).agents
        with pytest.raises(BadParameter):
            admin.rpc.ListAgents(pb.ListAgentsRequest(kind="admin"))
    # Sorted by kind then name; never the host's own local-admin identity.
    assert [(a.kind, a.name, a.id) for a in everything] == [
        ("node", "web-1", web.agent_id),
        ("proxy", "edge-1", proxy_id),
    ]
    assert (nodes[0].labels["env"], nodes[0].online) == ("prod", False)
    assert list(everything[1].addrs) == ["proxy.example.com:443"]


def test_a_removed_node_is_refused_and_unlisted(auth: RunningAuth, tmp_path: Path) -> None:
    # (An open heartbeat stream ending at removal is covered end to end, with real
    # processes: tests/e2e/test_agent_removal_e2e.py.)
    ident = join_node(auth, tmp_path / "web", "web-1")
    keep = join_node(auth, tmp_path / "db", "db-1")
    beating = Beating(auth)
    try:
        beating.start(keep)
        with auth.admin() as admin:
            deadline = time.monotonic() + 5
            while not admin.rpc.ListNodes(pb.ListNodesRequest()).nodes:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            online = {a.name: a.online for a in admin.rpc.ListAgents(pb.ListAgentsRequest()).agents}
            assert online == {"db-1": True, "web-1": False}
            reply = admin.rpc.DeleteAgent(pb.DeleteAgentRequest(id_or_name="web-1", kind="node"))
            assert reply.id == ident.agent_id
            names = [a.name for a in admin.rpc.ListAgents(pb.ListAgentsRequest()).agents]
            assert names == ["db-1"]
            assert [n.name for n in admin.rpc.ListNodes(pb.ListNodesRequest()).nodes] == ["db-1"]
    finally:
        beating.close()
    with auth.client(identity(ident)) as client, pytest.raises(NotAuthenticated):
        client.rpc.RenewHostCerts(renew_request())
    (event,) = audit_events(auth, "agent.delete")
    fields = json.loads(event.fields_json)
    assert (event.user, fields["agent_id"], fields["kind"]) == (
        auth.admin_identity().agent_id,
        ident.agent_id,
        "node",
    )
    # The name is free again.
    assert join_node(auth, tmp_path / "web2", "web-1").agent_id != ident.agent_id


def test_refused_removals_change_nothing(auth: RunningAuth, tmp_path: Path) -> None:
    first = register(auth, new_token(auth, type="node"), "twin-a").credentials.agent_id
    ident = join_node(auth, tmp_path / "web", "web-1")
    add_user(auth, "alice")
    before = keys_under(auth, "agents/")
    admin_id = auth.admin_identity().agent_id
    with auth.admin() as admin:
        for request, error in (
            (pb.DeleteAgentRequest(id_or_name="nope", kind="node"), NotFound),
            (pb.DeleteAgentRequest(id_or_name="web-1", kind="proxy"), NotFound),
            (pb.DeleteAgentRequest(id_or_name=admin_id, kind="node"), NotFound),
            (pb.DeleteAgentRequest(id_or_name="web-1", kind="bot"), BadParameter),
            (pb.DeleteAgentRequest(id_or_name="", kind="node"), BadParameter),
        ):
            with pytest.raises(error):
                admin.rpc.DeleteAgent(request)
    with login(auth, "alice") as alice, pytest.raises(AccessDenied):
        alice.rpc.DeleteAgent(pb.DeleteAgentRequest(id_or_name="web-1", kind="node"))
    with auth.client(identity(ident)) as node, pytest.raises(AccessDenied):
        node.rpc.DeleteAgent(pb.DeleteAgentRequest(id_or_name=first, kind="node"))
    assert keys_under(auth, "agents/") == before
    assert audit_events(auth, "agent.delete") == []
