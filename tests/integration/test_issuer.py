"""What the one issuer puts in the certificates of this host's in-process proxy (the
node, joined proxy and agent identity certificates are checked where they are joined)."""

from __future__ import annotations

import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import SSHCertificate, load_ssh_public_identity

from proto.trust import PROXY_SERVER_NAME
from server.auth.crypto.issuer import SERVER_CERT_TTL, host_principals
from tests.servers import RunningAuth


def test_the_principal_rule_per_kind() -> None:
    hosts = ["10.0.0.5", "web.example.com"]
    assert host_principals("node", "id-1", "web-1", "c", hosts) == [
        "id-1", "web-1", "web-1.c", "10.0.0.5", "web.example.com",
    ]  # fmt: skip
    assert host_principals("proxy", "id-2", "edge-1", "c", hosts) == [
        "id-2", "edge-1", "proxy", "10.0.0.5", "web.example.com",
    ]  # fmt: skip


def test_the_in_process_proxy_gets_a_hop_certificate_and_a_web_chain(auth: RunningAuth) -> None:
    names = ("proxy.example.com", "127.0.0.1", "proxy.example.com")
    directory: Path = auth.call(lambda: auth.server.local_proxy_credentials(names))
    cert = load_ssh_public_identity((directory / "ssh_host_key-cert.pub").read_bytes())
    assert isinstance(cert, SSHCertificate)
    assert cert.valid_principals == [b"local-proxy", b"proxy", b"proxy.example.com", b"127.0.0.1"]
    assert cert.key_id.startswith(b"host=local-proxy serial=")
    assert abs(cert.valid_after - (time.time() - 60)) < 30
    assert abs(cert.valid_before - (time.time() + SERVER_CERT_TTL)) < 30
    chain = x509.load_pem_x509_certificates((directory / "web.pem").read_bytes())
    assert len(chain) == 2 and chain[1].subject == chain[0].issuer  # leaf, then the CA
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in san] == [PROXY_SERVER_NAME, "proxy.example.com", "127.0.0.1"]
    assert (directory / "user_ca.pub").read_text().startswith("ssh-ed25519 ")
