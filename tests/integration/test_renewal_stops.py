"""A removed or locked node, proxy or agent identity stops renewing against a real auth
server, and says so once; before, nodes and proxies retried forever after removal."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent import bot
from agent.node import Node, NodeSettings
from proto.clock import FakeClock
from proto.errors import AccessDenied, NotAuthenticated
from proto.v1 import auth_pb2 as pb
from server.proxy import lone
from tests.integration.test_agent_identities import create
from tests.integration.test_agent_identities import pin as cluster_pin
from tests.integration.test_lone_proxy import joined_config, lone_proxy
from tests.integration.test_nodes import join_node
from tests.servers import LoopThread, RunningAuth


def stop_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("how", ["removed", "locked"])
def test_a_removed_or_locked_nodes_renewer_stops(
    auth: RunningAuth, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    ident = join_node(auth, tmp_path / "node", "web-1")
    with auth.admin() as admin:
        if how == "removed":
            admin.rpc.DeleteAgent(pb.DeleteAgentRequest(id_or_name="web-1", kind="node"))
        else:
            admin.rpc.CreateLock(
                pb.CreateLockRequest(target=pb.LockTarget(node=ident.agent_id), reason="audit")
            )
    # The clock stands where the certificates lapse: the renewal is due at once.
    node = Node(NodeSettings(data_dir=tmp_path / "node"), clock=FakeClock(ident.expires))
    loop = LoopThread()
    try:
        with caplog.at_level(logging.INFO):
            stopped = loop.run(node.renewer().run())
        loop.run(node.client().close())
    finally:
        loop.close()
    expected = NotAuthenticated if how == "removed" else AccessDenied
    assert isinstance(stopped.error, expected)
    (line,) = stop_lines(caplog)
    assert line.startswith(f"renewal of node web-1 ({ident.agent_id}) stopped")
    assert node.identity == ident  # nothing adopted, nothing rewritten
    assert (tmp_path / "node" / "tls.crt").read_text() == ident.tls_cert_pem


def test_a_removed_proxys_renewer_stops(
    auth: RunningAuth, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with lone_proxy(auth, joined_config(auth, tmp_path / "proxy")) as proxy:
        directory = proxy.identity.directory
        with auth.admin() as admin:
            admin.rpc.DeleteAgent(pb.DeleteAgentRequest(id_or_name="edge-1", kind="proxy"))
        renewer = lone.renewer(
            proxy.service, proxy.config, proxy.identity, clock=FakeClock(proxy.identity.expires)
        )
        with caplog.at_level(logging.INFO):
            stopped = proxy.loop.run(renewer.run())
        assert isinstance(stopped.error, NotAuthenticated)
        (line,) = stop_lines(caplog)
        assert line.startswith(f"renewal of proxy edge-1 ({proxy.identity.agent_id}) stopped")
        assert renewer.current == proxy.identity
        assert directory.exists()  # the generation in use is left alone


def test_a_deleted_agent_identity_stops_and_the_process_ends_with_the_error(
    auth: RunningAuth, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = bot.bootstrap(tmp_path / "s", create(auth), auth.addr, cluster_pin(auth))
    with auth.admin() as admin:
        admin.rpc.DeleteAgentIdentity(pb.DeleteAgentIdentityRequest(name="ci"))
    loop = LoopThread()
    try:
        with caplog.at_level(logging.INFO), pytest.raises(NotAuthenticated):
            loop.run(bot.run_forever(tmp_path / "s", tmp_path / "out", state,
                                     clock=FakeClock(state.expires)))  # fmt: skip
    finally:
        loop.close()
    (line,) = stop_lines(caplog)
    assert line.startswith("renewal of agent identity ci stopped")
    assert not (tmp_path / "out").exists()
