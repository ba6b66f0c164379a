"""The one listener policy (proto.sshserver) as asyncssh gets it, on the dependency
versions installed: scripts/lowest_versions.py runs this on pyproject's floors, so a
floor that cannot offer the hybrid post-quantum key exchange fails here."""

from __future__ import annotations

import time

import asyncssh
import pytest
from cryptography.hazmat.primitives.serialization import SSHCertificateType

from proto.errors import BadParameter
from proto.sshpolicy import AuthRefused, TrustedUserCAs, check_user_certificate
from proto.sshserver import certificate_only_options, offered_kex_algs
from tests.integration.sshd_fixtures import Authorities, public_line

WEAK = ("sha1", "md5", "diffie-hellman", "cbc", "3des", "ssh-dss", "zlib", "umac-64")


def options(owner: str = "node") -> asyncssh.SSHServerConnectionOptions:
    key, cert = Authorities().host_credentials(time.time())
    return certificate_only_options(
        owner=owner,
        server_factory=asyncssh.SSHServer,
        host_key=key,
        host_cert=cert,
        server_version="Mezite",
        allow_pty=False,
        agent_forwarding=False,
    )


def test_the_hybrid_post_quantum_kex_is_offered_first() -> None:
    assert offered_kex_algs()[0] == "mlkem768x25519-sha256"
    assert options().kex_algs[0] == b"mlkem768x25519-sha256"


def test_no_weak_algorithm_is_offered() -> None:
    served = options()
    lists = {
        "kex": served.kex_algs,
        "enc": served.encryption_algs,
        "mac": served.mac_algs,
        "sig": served.signature_algs,
    }
    for kind, algs in lists.items():
        assert algs, kind
        weak = [alg for alg in algs if any(word in alg.decode() for word in WEAK)]
        assert weak == [], kind
    assert b"ssh-rsa" not in served.signature_algs
    assert list(served.compression_algs) == [b"none"]


def test_an_rsa_host_key_is_refused() -> None:
    authorities = Authorities()
    _, cert = authorities.host_credentials(time.time())
    rsa_key = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    with pytest.raises(BadParameter, match="the proxy's SSH host key must be Ed25519"):
        certificate_only_options(
            owner="proxy", server_factory=asyncssh.SSHServer, host_key=rsa_key,
            host_cert=cert, server_version="MeziteProxy", allow_pty=False,
            agent_forwarding=False,
        )  # fmt: skip


def test_a_user_certificate_is_no_host_certificate() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import SSHCertificateBuilder

    authorities = Authorities()
    key = asyncssh.generate_private_key("ssh-ed25519")
    public = ed25519.Ed25519PublicKey.from_public_bytes(key.public_data[-32:])
    now = int(time.time())
    line = (
        SSHCertificateBuilder().public_key(public).serial(1).type(SSHCertificateType.USER)
        .key_id(b"user").valid_principals([b"node-1"]).valid_after(now - 60)
        .valid_before(now + 600).sign(authorities.host_ca).public_bytes()
    )  # fmt: skip
    with pytest.raises(BadParameter, match="the node's host certificate must be a host"):
        certificate_only_options(
            owner="node", server_factory=asyncssh.SSHServer, host_key=key,
            host_cert=asyncssh.import_certificate(line), server_version="Mezite",
            allow_pty=False, agent_forwarding=False,
        )  # fmt: skip


def test_a_sha1_rsa_signature_is_refused_before_the_certificate_is_read() -> None:
    signature = b"\x00\x00\x00\x07ssh-rsa" + b"\x00\x00\x00\x04sig!"
    trusted = TrustedUserCAs([public_line(Authorities().user_ca)])
    with pytest.raises(AuthRefused, match="SHA-1 RSA signatures are not accepted"):
        check_user_certificate(
            b"garbage", "alice", signature=signature, trusted=trusted, labels=None,
            now=time.time(),
        )  # fmt: skip
    # Any other signature algorithm gets as far as the certificate check.
    sha2 = b"\x00\x00\x00\x0crsa-sha2-256" + b"\x00\x00\x00\x04sig!"
    with pytest.raises(AuthRefused, match="plain public keys are not accepted"):
        check_user_certificate(
            b"garbage", "alice", signature=sha2, trusted=trusted, labels=None,
            now=time.time(),
        )  # fmt: skip
