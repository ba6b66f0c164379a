"""A join is atomic from the node's side: the token is spent in the transaction that
records the node, and a join whose reply was lost, run again with the same name and keys,
is answered again for the record it made. Against a real auth server; the crash itself
(SIGKILL at each step) is in tests/e2e/test_join_crash_e2e.py."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from agent.join import JoinRequest, join
from proto.clock import FakeClock
from proto.errors import AccessDenied, AlreadyExists, BadParameter, NotAuthenticated
from proto.keys import NodeKeys, TLSKey, new_node_keys, new_tls_key
from proto.lifecycle import JOIN_KEYS_FILE, JoinKeys
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import audit_events, keys_under
from tests.integration.test_nodes import new_token
from tests.servers import RunningAuth


def register(
    auth: RunningAuth, token: str, name: str, keys: NodeKeys, web: TLSKey | None = None
) -> pb.AgentCredentials:
    with auth.client() as anon:
        reply = anon.rpc.RegisterAgent(
            pb.RegisterAgentRequest(
                token=token,
                name=name,
                ssh_public_key=keys.ssh_public_line,
                tls_public_key_pem=keys.tls_public_pem,
                tls_server_public_key_pem=web.public_pem if web else "",
                advertise_addrs=["127.0.0.1:3022"] if web is None else ["10.0.0.7:3080"],
            )
        )
    return reply.credentials


def agents(auth: RunningAuth) -> list[str]:
    return [k for k in keys_under(auth, "agents/") if not k.startswith("agents/local-admin")]


def test_the_same_join_again_gets_the_same_node_and_spends_nothing(auth: RunningAuth) -> None:
    token, keys = new_token(auth, env="prod"), new_node_keys()
    first = register(auth, token, "j4", keys)
    again = register(auth, token, "j4", keys)
    assert again.agent_id == first.agent_id and dict(again.labels) == {"env": "prod"}
    assert agents(auth) == [f"agents/{first.agent_id}"] and keys_under(auth, "tokens/") == []
    joins = [json.loads(e.fields_json) for e in audit_events(auth, "join")]
    assert sorted(j.get("retry", False) for j in joins) == [False, True]


def test_a_comment_on_the_ssh_key_does_not_make_it_another_join(auth: RunningAuth) -> None:
    token, keys = new_token(auth), new_node_keys()
    first = register(auth, token, "j4", keys)
    commented = NodeKeys(
        ssh_private_pem=keys.ssh_private_pem,
        ssh_public_line=keys.ssh_public_line + " root@j4",
        tls_private_pem=keys.tls_private_pem,
        tls_public_pem=keys.tls_public_pem,
    )
    assert register(auth, token, "j4", commented).agent_id == first.agent_id


@pytest.mark.parametrize("change", ["ssh key", "tls key", "name", "secret"])
def test_a_spent_token_with_anything_else_changed_is_refused_and_changes_nothing(
    auth: RunningAuth, change: str
) -> None:
    token, keys = new_token(auth), new_node_keys()
    register(auth, token, "j4", keys)
    other = new_node_keys()
    name = "j5" if change == "name" else "j4"
    if change == "ssh key":
        keys = NodeKeys(other.ssh_private_pem, other.ssh_public_line,
                        keys.tls_private_pem, keys.tls_public_pem)  # fmt: skip
    elif change == "tls key":
        keys = NodeKeys(keys.ssh_private_pem, keys.ssh_public_line,
                        other.tls_private_pem, other.tls_public_pem)  # fmt: skip
    elif change == "secret":
        token = token.split(".")[0] + "." + "A" * 43
    before = agents(auth)
    with pytest.raises((NotAuthenticated, AlreadyExists)) as info:
        register(auth, token, name, keys)
    if change == "name":
        assert info.value.message == "invalid, expired or already used join token"
    assert agents(auth) == before and len(audit_events(auth, "join")) == 1


def test_a_fresh_token_completes_the_join_without_relabelling(auth: RunningAuth) -> None:
    keys = new_node_keys()
    first = register(auth, new_token(auth, env="dev"), "j4", keys)
    fresh = new_token(auth, env="prod")  # an admin's second token, other labels
    again = register(auth, fresh, "j4", keys)
    assert again.agent_id == first.agent_id and dict(again.labels) == {"env": "dev"}
    assert keys_under(auth, "tokens/") == []  # each token works once
    record = auth.call(lambda: auth.server.agents.get(first.agent_id))
    assert record.labels == {"env": "dev"} and len(agents(auth)) == 1
    # With fresh keys that same fresh-looking retry is someone else: the name is taken.
    with pytest.raises(AlreadyExists, match="already registered"):
        register(auth, new_token(auth), "j4", new_node_keys())


def test_no_retry_after_the_first_token_would_have_expired(
    auth: RunningAuth, clock: FakeClock
) -> None:
    keys = new_node_keys()
    register(auth, new_token(auth, ttl=60), "j4", keys)
    clock.advance(61)
    fresh = new_token(auth)
    with pytest.raises(AlreadyExists, match="already registered"):
        register(auth, fresh, "j4", keys)
    assert keys_under(auth, "tokens/") == [f"tokens/{fresh.split('.')[0]}"]  # not spent


def test_a_removed_node_is_not_answered_again(auth: RunningAuth) -> None:
    token, keys = new_token(auth), new_node_keys()
    first = register(auth, token, "j4", keys)
    with auth.admin() as admin:
        admin.rpc.DeleteAgent(pb.DeleteAgentRequest(id_or_name="j4", kind="node"))
    with pytest.raises(NotAuthenticated):
        register(auth, token, "j4", keys)
    # A new join with a new token is a new node: the removed id never comes back.
    assert register(auth, new_token(auth), "j4", keys).agent_id != first.agent_id


def test_a_locked_node_is_not_answered_again(auth: RunningAuth) -> None:
    token, keys = new_token(auth), new_node_keys()
    register(auth, token, "j4", keys)
    with auth.admin() as admin:
        admin.rpc.CreateLock(pb.CreateLockRequest(target=pb.LockTarget(node="j4"), reason="t"))
    fresh = new_token(auth)
    for attempt in (token, fresh):
        with pytest.raises(AccessDenied, match="locked"):
            register(auth, attempt, "j4", keys)
    assert keys_under(auth, "tokens/") == [f"tokens/{fresh.split('.')[0]}"]


def test_a_proxy_join_is_answered_again_for_its_first_addresses(auth: RunningAuth) -> None:
    token, keys, web = new_token(auth, "proxy"), new_node_keys(), new_tls_key()
    first = register(auth, token, "edge-1", keys, web)
    again = register(auth, token, "edge-1", keys, web)
    assert again.agent_id == first.agent_id and again.tls_server_certificate_pem
    assert len(agents(auth)) == 1
    with pytest.raises(NotAuthenticated):  # the same keys as a node: another join
        register(auth, token, "edge-1", keys)


def test_mezd_join_keeps_its_keys_until_the_identity_is_saved(
    auth: RunningAuth, tmp_path: Path
) -> None:
    """The client half: keys are kept before the call and reused by a rerun, so a join
    whose reply was lost completes; once the identity is saved they are gone."""
    assert auth.server.cas is not None
    data_dir = tmp_path / "node"
    request = JoinRequest(
        token=new_token(auth), auth_server=auth.addr, ca_pin=auth.server.cas.host_x509.pin,
        name="j4", labels={}, advertise_addrs=["127.0.0.1:3022"],
    )  # fmt: skip
    kept = JoinKeys(data_dir, "j4").get(lambda: asdict(new_node_keys()))
    register(auth, request.token, "j4", NodeKeys(**kept))  # auth answered; the reply was lost
    identity = join(request, data_dir)
    assert identity.ssh_host_key_pem == kept["ssh_private_pem"]
    assert not (data_dir / JOIN_KEYS_FILE).exists()
    assert len(agents(auth)) == 1


def test_concurrent_joins_under_one_new_name_have_one_winner(auth: RunningAuth) -> None:
    """The name is claimed in the join's own transaction: the catalog check before it is
    in memory, and two joins can both pass it."""
    from concurrent.futures import ThreadPoolExecutor

    tokens = [new_token(auth) for _ in range(12)]

    def attempt(token: str) -> str:
        try:
            register(auth, token, "same-name", new_node_keys())
        except AlreadyExists:
            return "taken"
        return "joined"

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(attempt, tokens))
    assert outcomes.count("joined") == 1, outcomes
    assert len(agents(auth)) == 1
    assert len(keys_under(auth, "tokens/")) == 11  # the losers' tokens are not spent
    # Removing the node frees the name for a new join.
    with auth.admin() as admin:
        admin.rpc.DeleteAgent(pb.DeleteAgentRequest(id_or_name="same-name", kind="node"))
    assert register(auth, new_token(auth), "same-name", new_node_keys()).agent_id


def test_a_refused_join_leaves_nothing_but_a_broken_one_keeps_its_keys(
    auth: RunningAuth, tmp_path: Path
) -> None:
    from proto.errors import ConnectionProblem

    assert auth.server.cas is not None
    pin = auth.server.cas.host_x509.pin

    def attempt(token: str, where: str, server: str) -> None:
        join(JoinRequest(token=token, auth_server=server, ca_pin=pin, name="j9", labels={},
                         advertise_addrs=["127.0.0.1:3022"]), tmp_path / where)  # fmt: skip

    with pytest.raises(NotAuthenticated):
        attempt("0123456789abcdef." + "A" * 43, "refused", auth.addr)
    assert not (tmp_path / "refused").exists()
    with pytest.raises(ConnectionProblem):  # nothing listens there: maybe committed? keep
        attempt(new_token(auth), "broken", "127.0.0.1:1")
    assert (tmp_path / "broken" / JOIN_KEYS_FILE).exists()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("proxy", "is the proxy's name"),
        ("0f8ad6c2-61b5-4b1e-9a53-3c2f0e7d9a11", "has the form of an agent id"),
        ("local-admin", "has the form of an agent id"),
        ("10.0.0.7", "is an IP address"),
        ("test-cluster", "ends in the cluster's name (test-cluster)"),
        ("web.test-cluster", "ends in the cluster's name (test-cluster)"),
    ],
)
def test_a_name_that_is_another_agents_key_is_refused_and_spends_nothing(
    auth: RunningAuth, name: str, why: str
) -> None:
    """A node's name, NAME.CLUSTER and id are its certificate's principals and what the
    proxy routes `mez ssh NAME` by: a node called like another's id or another's
    NAME.CLUSTER could answer for it."""
    token, keys = new_token(auth), new_node_keys()
    before = agents(auth)
    with pytest.raises(BadParameter) as refused:
        register(auth, token, name, keys)
    assert refused.value.message == f"node name {name!r} {why}"
    assert agents(auth) == before
    assert keys_under(auth, "tokens/") == [f"tokens/{token.split('.')[0]}"]
    assert register(auth, token, "web", keys).agent_id  # the token still joins, once
    assert keys_under(auth, "tokens/") == []
