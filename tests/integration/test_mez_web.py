"""mez's client for the proxy's REST API (proto.cluster_api.WebClusterAPI) against a
real proxy and auth: the pinned CA and the address are checked before anything is
sent, and errors come back as the vocabulary."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cli.mez_client import trust_bundle
from proto.cluster_api import WebClusterAPI
from proto.errors import BadParameter, NotAuthenticated, TrustFailure
from proto.keys import new_node_keys
from proto.trust import spki_pin
from proto.web_client import ping
from server.proxy import GrpcAuthGateway
from tests.integration.conftest import PASSWORD, add_user, audit_events
from tests.integration.proxy_fixtures import (
    RunningProxy,
    issue_proxy_tls,
    proxy_for,
    proxy_settings,
    running_proxy,
)
from tests.servers import RunningAuth, running_auth


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningAuth, RunningProxy]]:
    root = tmp_path_factory.mktemp("mez-web")
    with running_auth(root / "data") as auth, proxy_for(auth, root / "tls") as proxy:
        add_user(auth, "alice")
        yield auth, proxy


def other_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the cluster")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_login_certs_nodes_me_and_logout(stack: tuple[RunningAuth, RunningProxy]) -> None:
    auth, proxy = stack
    addr = f"127.0.0.1:{proxy.handle.port}"
    doc = ping(addr)
    ca_pem, pin = trust_bundle(doc.ca_pem, doc.ca_pins[0], None)
    assert pin == spki_pin(auth.ca_pem.decode())
    session = WebClusterAPI(addr, ca_pem).login("alice", PASSWORD).session_id
    web = WebClusterAPI(addr, ca_pem, session)
    issued = web.issue_user_certs(new_node_keys().ssh_public_line, 3600)
    assert issued.ssh_certificate.startswith("ssh-ed25519-cert-v01@openssh.com ")
    assert web.current_user().username == "alice"
    assert web.list_nodes({"env": "prod"}) == []
    web.logout()
    with pytest.raises(NotAuthenticated):
        web.current_user()


def test_errors_arrive_as_the_vocabulary(stack: tuple[RunningAuth, RunningProxy]) -> None:
    auth, proxy = stack
    addr = f"127.0.0.1:{proxy.handle.port}"
    ca_pem = auth.ca_pem.decode()
    before = len(audit_events(auth, "user.login.failed"))
    with pytest.raises(NotAuthenticated, match="invalid username or password"):
        WebClusterAPI(addr, ca_pem).login("alice", "wrong password")
    assert len(audit_events(auth, "user.login.failed")) == before + 1
    session = WebClusterAPI(addr, ca_pem).login("alice", PASSWORD).session_id
    with pytest.raises(BadParameter):
        WebClusterAPI(addr, ca_pem, session).issue_user_certs("ssh-dss AAAA", 60)


def test_a_proxy_the_pinned_ca_does_not_verify_gets_nothing(
    stack: tuple[RunningAuth, RunningProxy], tmp_path: Path
) -> None:
    auth, proxy = stack
    before = len(audit_events(auth, "user.login", "user.login.failed"))
    with pytest.raises(TrustFailure, match="not verified by the cluster CA"):
        WebClusterAPI(f"127.0.0.1:{proxy.handle.port}", other_ca()).login("alice", PASSWORD)
    # The right CA, but a certificate for another name than the address dialled.
    elsewhere = issue_proxy_tls(auth, tmp_path / "tls", names=("elsewhere.example",))
    gateway = lambda: GrpcAuthGateway(auth.addr, auth.ca_pem)  # noqa: E731
    with (
        running_proxy(gateway, proxy_settings(auth), elsewhere) as misnamed,
        pytest.raises(TrustFailure),
    ):
        WebClusterAPI(f"127.0.0.1:{misnamed.handle.port}", auth.ca_pem.decode()).login(
            "alice", PASSWORD
        )
    assert len(audit_events(auth, "user.login", "user.login.failed")) == before  # never sent
    doc = ping(f"127.0.0.1:{proxy.handle.port}")
    with pytest.raises(TrustFailure):
        trust_bundle(doc.ca_pem, "sha256:" + "0" * 64, None)
    with pytest.raises(NotAuthenticated, match="without a CA pin"):
        trust_bundle(doc.ca_pem, None, None)
