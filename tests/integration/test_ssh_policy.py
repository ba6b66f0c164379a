"""One SSH policy for every listener: the node's SSH server and the proxy's SSH hop are
held to the same algorithm tests, with OpenSSH's ssh and asyncssh as clients
(docs/ssh-policy.md; ssh-audit runs against both in tests/e2e/test_ssh_audit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from proto.sshserver import offered_kex_algs
from tests.integration.hop_fixtures import running_hop
from tests.integration.sshd_fixtures import (
    SSH_BIN,
    RunningNode,
    SSHResult,
    UserCert,
    run,
    running_node,
)

pytestmark = pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH client `ssh` not installed")

SHA1_REFUSAL = "SHA-1 RSA signatures are not accepted"


@dataclass
class Listener:
    """One of Mezite's SSH listeners, as a client sees it."""

    name: str
    port: int
    node: RunningNode
    refusals: Callable[[], list[object]]  # the reasons of its auth.failed events

    async def ssh(self, cert: UserCert, options: Sequence[str] = ()) -> SSHResult:
        """``ssh -v ... true``: the hop runs no commands, so success is read from
        OpenSSH's "Authenticated to" line on both listeners."""
        assert SSH_BIN is not None
        args = [*options, "-v", *self.node.ssh_options(cert), "-p", str(self.port)]
        return await run(SSH_BIN, *args, "alice@127.0.0.1", "true", env=self.node.client_env())

    async def connect(self, cert: UserCert, **kwargs: object) -> asyncssh.SSHClientConnection:
        return await asyncssh.connect(
            "127.0.0.1",
            self.port,
            username="alice",
            client_keys=cert.asyncssh_keys(),
            known_hosts=None,
            agent_path=None,
            config=None,
            **kwargs,
        )


def authenticated(result: SSHResult) -> bool:
    return "Authenticated to 127.0.0.1" in result.stderr.decode()


def negotiated(result: SSHResult) -> str:
    """OpenSSH's ``debug1: kex:`` lines: the algorithms the handshake settled on."""
    lines = result.stderr.decode().splitlines()
    return "\n".join(line for line in lines if line.startswith("debug1: kex: "))


@pytest.fixture(params=["node", "proxy"])
async def listener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Listener]:
    async with running_node(tmp_path) as node:
        if request.param == "node":
            yield Listener(
                "node",
                node.port,
                node,
                lambda: [e.fields["reason"] for e in node.audit.of("auth.failed")],
            )
            return
        async with running_hop(node) as hop:
            yield Listener(
                "proxy", hop.port, node, lambda: [f["reason"] for f in hop.of("auth.failed")]
            )


@pytest.mark.parametrize(
    "option",
    [
        "Ciphers=aes128-gcm@openssh.com",
        "Ciphers=chacha20-poly1305@openssh.com",
        "Ciphers=aes256-ctr",
        "KexAlgorithms=curve25519-sha256",
        "KexAlgorithms=ecdh-sha2-nistp256",
        "MACs=hmac-sha2-256-etm@openssh.com",
        "MACs=hmac-sha2-512-etm@openssh.com",
        "HostKeyAlgorithms=ssh-ed25519-cert-v01@openssh.com",
    ],
)
async def test_modern_algorithms_are_served(listener: Listener, option: str) -> None:
    cert = listener.node.certs.issue("alice")
    options = ["-o", option]
    if option.startswith("MACs"):
        options += ["-o", "Ciphers=aes128-ctr"]  # AEAD ciphers bring their own MAC
    result = await listener.ssh(cert, options)
    assert authenticated(result), result.stderr
    algorithm = option.split("=", 1)[1]
    if not option.startswith("HostKey"):
        assert algorithm in negotiated(result), result.stderr


@pytest.mark.parametrize(
    "option",
    [
        "Ciphers=aes128-cbc",
        "Ciphers=aes256-cbc",
        "Ciphers=3des-cbc",
        "KexAlgorithms=diffie-hellman-group14-sha1",
        "KexAlgorithms=diffie-hellman-group1-sha1",
        "KexAlgorithms=diffie-hellman-group-exchange-sha1",
        "KexAlgorithms=diffie-hellman-group-exchange-sha256",  # asyncssh's allows 1024 bits
        # Finite-field DH at all: what DHEat (CVE-2002-20001) makes a server compute.
        "KexAlgorithms=diffie-hellman-group14-sha256",
        "KexAlgorithms=diffie-hellman-group16-sha512",
        "MACs=hmac-sha1",
        "MACs=hmac-sha1-etm@openssh.com",
        "MACs=hmac-md5",
        "MACs=umac-64-etm@openssh.com",
        "HostKeyAlgorithms=ssh-rsa",
        "HostKeyAlgorithms=ssh-dss",
    ],
)
async def test_legacy_algorithms_are_refused(listener: Listener, option: str) -> None:
    cert = listener.node.certs.issue("alice")
    options = ["-o", option]
    if option.startswith("MACs"):
        options += ["-o", "Ciphers=aes128-ctr"]
    result = await listener.ssh(cert, options)
    assert result.returncode == 255
    assert "Unable to negotiate" in result.stderr.decode(), result.stderr
    assert not authenticated(result)
    assert listener.node.audit.of("session.start") == []


async def test_compression_is_never_negotiated(listener: Listener) -> None:
    cert = listener.node.certs.issue("alice")
    result = await listener.ssh(cert, ["-o", "Compression=yes"])
    assert authenticated(result), result.stderr
    kex = negotiated(result)
    assert kex.count("compression: none") == 2, kex  # both directions
    with pytest.raises(asyncssh.KeyExchangeFailed):
        await listener.connect(cert, compression_algs=["zlib@openssh.com", "zlib"])


async def test_the_hybrid_post_quantum_kex_is_negotiated(listener: Listener) -> None:
    """OpenSSH 9.9's default; Debian 12's ssh (9.2) lacks it, so asyncssh is the client."""
    cert = listener.node.certs.issue("alice")
    async with await listener.connect(cert, kex_algs=["mlkem768x25519-sha256"]) as conn:
        assert conn.get_extra_info("username") == "alice"


async def test_a_stock_openssh_client_gets_the_best_kex_both_sides_have(
    listener: Listener,
) -> None:
    """SSH settles on the client's first choice that the server offers: with OpenSSH
    9.9+ that is mlkem768x25519; with Debian 12's 9.2 it would be sntrup761x25519 where
    asyncssh finds liboqs, and is curve25519 where it does not (docs/ssh-policy.md)."""
    assert SSH_BIN is not None
    config = await run(SSH_BIN, "-G", "-F", "/dev/null", "127.0.0.1")
    (line,) = [ln for ln in config.out.splitlines() if ln.startswith("kexalgorithms ")]
    served = offered_kex_algs()
    expected = next(alg for alg in line.split()[1].split(",") if alg in served)
    result = await listener.ssh(listener.node.certs.issue("alice"))
    assert authenticated(result), result.stderr
    assert f"debug1: kex: algorithm: {expected}" in negotiated(result)


async def test_a_sha1_rsa_user_signature_is_refused(listener: Listener) -> None:
    cert = listener.node.certs.issue("rsa", key=rsa.generate_private_key(65537, 2048))
    # server-sig-algs leaves ssh-rsa out, so OpenSSH will not even try it...
    openssh = await listener.ssh(
        cert, ["-o", "PubkeyAcceptedAlgorithms=ssh-rsa-cert-v01@openssh.com"]
    )
    assert openssh.returncode == 255
    assert "no mutual signature algorithm" in openssh.stderr.decode(), openssh.stderr
    assert SHA1_REFUSAL not in listener.refusals()
    # ...but a client that signs with SHA-1 anyway is refused, and audited as such.
    with pytest.raises(asyncssh.PermissionDenied):
        await listener.connect(cert, signature_algs=["ssh-rsa"])
    assert SHA1_REFUSAL in listener.refusals()
    assert listener.node.audit.of("session.start") == []
    # The same key and certificate, signing with SHA-2, gets in.
    refused = len(listener.refusals())
    async with await listener.connect(cert, signature_algs=["rsa-sha2-256"]) as conn:
        assert conn.get_extra_info("username") == "alice"
    assert authenticated(await listener.ssh(cert))
    assert len(listener.refusals()) == refused
