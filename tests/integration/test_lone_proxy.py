"""A proxy on its own (roles = ["proxy"]): it joins with a proxy token, serves HTTPS and
SSH with the certificates auth issued for it, and renews them in place."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID

from proto.errors import BadParameter, NotAuthenticated, TrustFailure
from proto.keys import new_node_keys, new_tls_key
from proto.trust import PROXY_SERVER_NAME
from proto.v1 import auth_pb2 as pb
from server.config import ServerConfig, resolve_config
from server.proxy import identity as store
from server.proxy import lone
from server.proxy.identity import ProxyIdentity
from server.proxy.service import ProxyService
from tests.integration.conftest import PASSWORD, add_user, audit_events, keys_under
from tests.servers import LoopThread, RunningAuth


def new_token(auth: RunningAuth, type: str) -> str:
    with auth.admin() as admin:
        return str(admin.rpc.CreateToken(pb.CreateTokenRequest(type=type)).token)


def pin(auth: RunningAuth) -> str:
    assert auth.server.cas is not None
    return auth.server.cas.host_x509.pin


def proxy_config(auth: RunningAuth, data_dir: Path, **flags: object) -> ServerConfig:
    base: dict[str, object] = {
        "data_dir": data_dir,
        "roles": "proxy",
        "auth_server": auth.addr,
        "proxy.web_listen_addr": "127.0.0.1:0",
        "proxy.ssh_listen_addr": "127.0.0.1:0",
        "proxy.name": "edge-1",
    }
    return resolve_config(config_file=None, env={}, flags={**base, **flags})


@dataclass
class LoneProxy:
    service: ProxyService
    identity: ProxyIdentity
    config: ServerConfig
    loop: LoopThread
    host_ca_line: str

    @property
    def base_url(self) -> str:
        return f"https://{self.service.web_addr}"

    def http(self) -> httpx.Client:
        context = ssl.create_default_context(
            cadata=(self.identity.directory / "ca.pem").read_text()
        )
        return httpx.Client(base_url=self.base_url, verify=context, timeout=20)

    def web_cert(self) -> x509.Certificate:
        host, port = self.service.web_addr.rsplit(":", 1)
        return x509.load_pem_x509_certificate(
            ssl.get_server_certificate((host, int(port))).encode()
        )

    def ssh_cert(self) -> asyncssh.SSHCertificate:
        """The host certificate the SSH listener presents, after checking that a client
        trusting only the host CA accepts it for 127.0.0.1 (the handshake gets as far as
        user authentication, which an anonymous client fails)."""
        host, port = self.service.ssh_addr.rsplit(":", 1)
        ca_line = self.host_ca_line

        async def handshake() -> None:
            with pytest.raises(asyncssh.PermissionDenied):
                await asyncssh.connect(
                    host,
                    int(port),
                    username="nobody",
                    client_keys=[],
                    agent_path=None,
                    known_hosts=([], [asyncssh.import_public_key(ca_line)], []),
                    server_host_key_algs=["ssh-ed25519-cert-v01@openssh.com"],
                    config=None,
                )

        async def fetch() -> asyncssh.SSHKey | None:
            return await asyncssh.get_server_host_key(
                host, int(port), server_host_key_algs=["ssh-ed25519-cert-v01@openssh.com"]
            )

        self.loop.run(handshake())
        served = self.loop.run(fetch())
        cert = asyncssh.import_certificate(
            (self.identity.directory / "ssh_host_key-cert.pub").read_bytes()
        )
        assert served is not None and served.public_data == cert.key.public_data
        return cert

    def renew(self) -> None:
        self.identity = self.loop.run(lone.renew_once(self.service, self.config, self.identity))


@contextmanager
def lone_proxy(auth: RunningAuth, config: ServerConfig) -> Iterator[LoneProxy]:
    assert auth.server.cas is not None
    host_ca_line = auth.server.cas.host_ssh.public_line
    loop = LoopThread()
    try:
        service, identity = loop.run(lone.start(config))
        try:
            yield LoneProxy(service, identity, config, loop, host_ca_line)
        finally:
            loop.run(service.stop())
    finally:
        loop.close()


def joined_config(auth: RunningAuth, data_dir: Path) -> ServerConfig:
    return proxy_config(auth, data_dir, join_token=new_token(auth, "proxy"), ca_pin=pin(auth))


def test_a_proxy_token_joins_a_proxy_with_a_server_certificate(auth: RunningAuth) -> None:
    keys, web = new_node_keys(), new_tls_key()
    with auth.client() as anon:
        reply = anon.rpc.RegisterAgent(
            pb.RegisterAgentRequest(
                token=new_token(auth, "proxy"),
                name="edge-1",
                advertise_addrs=["proxy.example.com:443", "10.0.0.7:3023"],
                ssh_public_key=keys.ssh_public_line,
                tls_public_key_pem=keys.tls_public_pem,
                tls_server_public_key_pem=web.public_pem,
            ),
        )
    creds = reply.credentials
    chain = x509.load_pem_x509_certificates(creds.tls_server_certificate_pem.encode())
    leaf = chain[0]
    assert chain[1].subject == chain[1].issuer  # the host CA follows, for pin-only clients
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {PROXY_SERVER_NAME, "proxy.example.com"}
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    public = leaf.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    assert public.decode() == web.public_pem
    host_cert = asyncssh.import_certificate(creds.ssh_host_certificate)
    assert set(host_cert.principals) == {
        creds.agent_id,
        "edge-1",
        "proxy",
        "proxy.example.com",
        "10.0.0.7",
    }
    record = auth.call(lambda: auth.server.agents.get(creds.agent_id))
    assert (record.kind, record.addrs) == ("proxy", ("proxy.example.com:443", "10.0.0.7:3023"))
    assert auth.server.catalog.get(creds.agent_id) is None  # never routed to as a node
    (joined,) = audit_events(auth, "join")
    assert json.loads(joined.fields_json)["kind"] == "proxy"


@pytest.mark.parametrize("token_type", ["node", "proxy"])
def test_a_token_only_joins_its_own_kind_and_a_refusal_spends_nothing(
    auth: RunningAuth, token_type: str
) -> None:
    token = new_token(auth, token_type)
    keys = new_node_keys()
    # A node token with a server key asks for a certificate browsers would trust; a
    # proxy token without one asks to become a node.
    server_key = new_tls_key().public_pem if token_type == "node" else ""
    agents_before = keys_under(auth, "agents/")
    with auth.client() as anon, pytest.raises(NotAuthenticated) as info:
        anon.rpc.RegisterAgent(
            pb.RegisterAgentRequest(
                token=token,
                name="sneaky",
                ssh_public_key=keys.ssh_public_line,
                tls_public_key_pem=keys.tls_public_pem,
                tls_server_public_key_pem=server_key,
            ),
        )
    assert info.value.message == "invalid, expired or already used join token"
    assert keys_under(auth, "agents/") == agents_before
    assert keys_under(auth, "tokens/") == [f"tokens/{token.split('.')[0]}"]
    assert len(audit_events(auth, "join.failed")) == 1


def test_a_malformed_server_key_is_refused_before_the_token_is_spent(auth: RunningAuth) -> None:
    token = new_token(auth, "proxy")
    keys = new_node_keys()
    with auth.client() as anon, pytest.raises(BadParameter):
        anon.rpc.RegisterAgent(
            pb.RegisterAgentRequest(
                token=token,
                name="edge-1",
                ssh_public_key=keys.ssh_public_line,
                tls_public_key_pem=keys.tls_public_pem,
                tls_server_public_key_pem="-----BEGIN PUBLIC KEY-----\nAAAA\n",
            ),
        )
    assert keys_under(auth, "tokens/") == [f"tokens/{token.split('.')[0]}"]


def test_the_lone_proxy_serves_https_and_ssh_with_its_issued_certificates(
    auth: RunningAuth, tmp_path: Path
) -> None:
    add_user(auth, "alice")
    with lone_proxy(auth, joined_config(auth, tmp_path / "proxy")) as proxy:
        with proxy.http() as http:  # verifies the chain and that it names 127.0.0.1
            ping = http.get("/v1/webapi/ping").json()
            assert ping["cluster_name"] == "test-cluster"
            assert ping["ca_pins"] == [pin(auth)]
            login = http.post("/v1/webapi/login", json={"username": "alice", "password": PASSWORD})
            assert login.status_code == 200, login.text
            me = http.get(
                "/v1/webapi/me",
                headers={"Authorization": f"Bearer {login.json()['session_id']}"},
            )
            assert me.json()["username"] == "alice"
        assert proxy.web_cert().subject.rfc4514_string() == f"CN={PROXY_SERVER_NAME}"
        host_cert = proxy.ssh_cert()
        assert "proxy" in host_cert.principals
        assert proxy.identity.agent_id in host_cert.principals
        record = auth.call(lambda: auth.server.agents.get(proxy.identity.agent_id))
        assert (record.kind, record.name) == ("proxy", "edge-1")
    # Files only the proxy may read, under one generation that `current` points at.
    root = store.identity_root(tmp_path / "proxy")
    assert (root / "current").resolve() == proxy.identity.directory
    assert all(p.stat().st_mode & 0o077 == 0 for p in proxy.identity.directory.iterdir())


def test_renewal_serves_new_certificates_to_new_connections(
    auth: RunningAuth, tmp_path: Path
) -> None:
    add_user(auth, "alice")
    with lone_proxy(auth, joined_config(auth, tmp_path / "proxy")) as proxy:
        first_dir = proxy.identity.directory
        web_before, ssh_before = proxy.web_cert(), proxy.ssh_cert()
        proxy.renew()
        web_after, ssh_after = proxy.web_cert(), proxy.ssh_cert()
        assert web_after.serial_number != web_before.serial_number
        assert ssh_after.key.public_data != ssh_before.key.public_data
        assert "proxy" in ssh_after.principals
        assert not first_dir.exists() and proxy.identity.directory.exists()
        # Calls to auth now go out with the renewed client certificate, and work.
        with proxy.http() as http:
            login = http.post("/v1/webapi/login", json={"username": "alice", "password": PASSWORD})
            assert login.status_code == 200, login.text

        async def list_nodes() -> object:
            return await proxy.service.auth_client().rpc.ListNodes(pb.ListNodesRequest())

        proxy.loop.run(list_nodes())
        renewed = [
            json.loads(e.fields_json)
            for e in audit_events(auth, "cert.create")
            if e.user == proxy.identity.agent_id
        ]
        assert renewed and renewed[-1]["kind"] == "proxy"
    # A restart needs no token, and is the same proxy.
    with lone_proxy(auth, proxy_config(auth, tmp_path / "proxy")) as again:
        assert again.identity.agent_id == proxy.identity.agent_id
        assert again.web_cert().serial_number == web_after.serial_number


def test_a_restart_with_the_token_again_does_not_spend_it(
    auth: RunningAuth, tmp_path: Path
) -> None:
    config = joined_config(auth, tmp_path / "proxy")
    with lone_proxy(auth, config):
        pass
    unused = new_token(auth, "proxy")
    with lone_proxy(auth, proxy_config(auth, tmp_path / "proxy", join_token=unused)):
        pass
    assert keys_under(auth, "tokens/") == [f"tokens/{unused.split('.')[0]}"]


def test_a_first_start_without_token_or_pin_is_refused(auth: RunningAuth, tmp_path: Path) -> None:
    loop = LoopThread()
    try:
        for flags in ({}, {"ca_pin": pin(auth)}, {"join_token": new_token(auth, "proxy")}):
            with pytest.raises(BadParameter, match="has not joined"):
                loop.run(lone.start(proxy_config(auth, tmp_path / "proxy", **flags)))
    finally:
        loop.close()
    assert not store.identity_root(tmp_path / "proxy").exists()


def test_a_wrong_pin_is_refused_before_the_token_is_sent(auth: RunningAuth, tmp_path: Path) -> None:
    token = new_token(auth, "proxy")
    config = proxy_config(auth, tmp_path / "proxy", join_token=token, ca_pin="sha256:" + "0" * 64)
    loop = LoopThread()
    try:
        with pytest.raises(TrustFailure):
            loop.run(lone.start(config))
    finally:
        loop.close()
    assert keys_under(auth, "tokens/") == [f"tokens/{token.split('.')[0]}"]
    assert audit_events(auth, "join.failed") == []


def test_a_changed_pin_or_lapsed_certificates_are_refused_at_start(
    auth: RunningAuth, tmp_path: Path
) -> None:
    with lone_proxy(auth, joined_config(auth, tmp_path / "proxy")) as proxy:
        directory = proxy.identity.directory
    loop = LoopThread()
    try:
        other_pin = "sha256:" + "1" * 64
        with pytest.raises(BadParameter, match="joined the cluster with pin"):
            loop.run(lone.start(proxy_config(auth, tmp_path / "proxy", ca_pin=other_pin)))
        doc = json.loads((directory / "identity.json").read_text())
        (directory / "identity.json").write_text(json.dumps({**doc, "expires": 1000.0}))
        with pytest.raises(NotAuthenticated, match="expired"):
            loop.run(lone.start(proxy_config(auth, tmp_path / "proxy")))
    finally:
        loop.close()


def test_renewal_keys_must_match_the_agent_kind(auth: RunningAuth, tmp_path: Path) -> None:
    from agent.join import JoinRequest, join
    from proto.client import ClientIdentity

    with lone_proxy(auth, joined_config(auth, tmp_path / "proxy")) as proxy:
        keys = new_node_keys()

        async def renew_without_server_key() -> object:
            return await proxy.service.auth_client().rpc.RenewHostCerts(
                pb.RenewHostCertsRequest(
                    ssh_public_key=keys.ssh_public_line, tls_public_key_pem=keys.tls_public_pem
                ),
            )

        with pytest.raises(BadParameter, match="HTTPS server certificate"):
            proxy.loop.run(renew_without_server_key())
    node = join(
        JoinRequest(
            token=new_token(auth, "node"),
            auth_server=auth.addr,
            ca_pin=pin(auth),
            name="web-1",
            labels={},
            advertise_addrs=["127.0.0.1:3022"],
        ),
        tmp_path / "node",
    )
    identity = ClientIdentity(
        agent_id=node.agent_id,
        cert_pem=node.tls_cert_pem.encode(),
        key_pem=node.tls_key_pem.encode(),
    )
    issued = len(audit_events(auth, "cert.create"))
    with auth.client(identity) as client, pytest.raises(BadParameter, match="only a proxy"):
        client.rpc.RenewHostCerts(
            pb.RenewHostCertsRequest(
                ssh_public_key=keys.ssh_public_line,
                tls_public_key_pem=keys.tls_public_pem,
                tls_server_public_key_pem=new_tls_key().public_pem,
            ),
        )
    assert len(audit_events(auth, "cert.create")) == issued


def test_an_operator_certificate_is_served_and_reloaded_when_replaced(
    auth: RunningAuth, tmp_path: Path
) -> None:
    from tests.integration.proxy_fixtures import issue_proxy_tls

    first = issue_proxy_tls(auth, tmp_path / "acme-1")
    second = issue_proxy_tls(auth, tmp_path / "acme-2")
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    live_cert.write_bytes(first.cert_file.read_bytes())
    live_key.write_bytes(first.key_file.read_bytes())
    config = proxy_config(
        auth,
        tmp_path / "proxy",
        join_token=new_token(auth, "proxy"),
        ca_pin=pin(auth),
        **{"proxy.cert_file": live_cert, "proxy.key_file": live_key},
    )

    def serial(path: Path) -> int:
        return x509.load_pem_x509_certificates(path.read_bytes())[0].serial_number

    with lone_proxy(auth, config) as proxy:
        assert proxy.web_cert().serial_number == serial(first.cert_file)
        assert proxy.loop.run(_async(proxy.service.reload_operator_cert)) is False  # unchanged
        # An ACME client replaces both files.
        live_cert.write_bytes(second.cert_file.read_bytes())
        live_key.write_bytes(second.key_file.read_bytes())
        assert proxy.loop.run(_async(proxy.service.reload_operator_cert)) is True
        assert proxy.web_cert().serial_number == serial(second.cert_file)
        # A half-written pair (new certificate, key not yet) is not served.
        live_cert.write_bytes(first.cert_file.read_bytes())
        assert proxy.loop.run(_async(proxy.service.reload_operator_cert)) is False
        assert proxy.web_cert().serial_number == serial(second.cert_file)
        with proxy.http() as http:
            assert http.get("/healthz").status_code == 200
        # Renewing the proxy's own certificates leaves the operator's in place.
        proxy.renew()
        assert proxy.web_cert().serial_number == serial(second.cert_file)
        live_key.write_bytes(first.key_file.read_bytes())  # the pair is whole again
        assert proxy.loop.run(_async(proxy.service.reload_operator_cert)) is True
        assert proxy.web_cert().serial_number == serial(first.cert_file)


async def _async(fn: Callable[[], bool]) -> bool:
    return fn()  # on the proxy's loop, where its TLS context lives


def test_a_join_whose_reply_was_lost_completes_at_the_next_start(
    auth: RunningAuth, tmp_path: Path
) -> None:
    """The lone proxy keeps its join keys until its identity is saved: auth committed
    the join, the reply never arrived, and the next start with the same token completes
    it for the same agent instead of failing on a spent token."""
    config = joined_config(auth, tmp_path / "proxy")
    keys, _ = store.join_keys(config.data_dir, "edge-1")
    assert config.join_token is not None
    with auth.client() as anon:
        lost = anon.rpc.RegisterAgent(
            pb.RegisterAgentRequest(
                token=config.join_token,
                name="edge-1",
                advertise_addrs=lone.advertised(config),
                ssh_public_key=keys.node.ssh_public_line,
                tls_public_key_pem=keys.node.tls_public_pem,
                tls_server_public_key_pem=keys.web.public_pem,
            )
        )
    with lone_proxy(auth, config) as proxy:
        assert proxy.identity.agent_id == lost.credentials.agent_id
    root = store.identity_root(config.data_dir)
    assert not (root / "join-keys.json").exists()
    proxies = [k for k in keys_under(auth, "agents/") if not k.startswith("agents/local-admin")]
    assert proxies == [f"agents/{lost.credentials.agent_id}"]
