"""mezd's SPIFFE Workload API (agent/workload_api.py) on a real unix socket, with the
`spiffe` library's own client and a raw grpc.aio one. The issuer stands in for auth
(IssueWorkloadSVIDs): it signs with a test CA for the uids it admits, and can stop
admitting, as auth does when a rule is removed."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from spiffe._proto import workload_pb2 as wl

from agent.attest import Facts, NotAttested, attest_socket
from agent.workload_api import WorkloadServer
from agent.workload_svids import SVIDCache
from proto.v1 import auth_pb2 as pb
from tests.spiffe_ca import SpireCA

DOMAIN = "wl.test"
HEADER = (("workload.spiffe.io", "true"),)


class FakeAuth:
    """IssueWorkloadSVIDs as auth answers it: one SVID for an admitted uid, none else."""

    def __init__(self, admitted: set[int], seconds: float = 3600) -> None:
        self.ca = SpireCA(DOMAIN)
        self.admitted = admitted
        self.seconds = seconds
        self.asked: list[Facts] = []
        self.signed = 0

    async def __call__(self, facts: Facts, public_key_pem: str) -> pb.IssueWorkloadSVIDsResponse:
        self.asked.append(facts)
        reply = pb.IssueWorkloadSVIDsResponse(trust_domain=DOMAIN, bundle_pem=self.ca.bundle_pem)
        if facts.uid in self.admitted:
            key = serialization.load_pem_public_key(public_key_pem.encode())
            spiffe_id = f"spiffe://{DOMAIN}/role/ci/builder"
            chain = self.ca.certify(key, spiffe_id, seconds=self.seconds)  # type: ignore[arg-type]
            self.signed += 1
            expires = time.time() + self.seconds
            reply.svids.append(pb.WorkloadSVID(rule="builder", spiffe_id=spiffe_id,
                                               svid_chain_pem=chain, expires=expires))  # fmt: skip
        return reply


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Short: a unix socket's path must fit in 108 bytes, which pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="wl-") as where:
        yield Path(where)


@asynccontextmanager
async def serving(sock_dir: Path, auth: FakeAuth) -> AsyncIterator[str]:
    server = WorkloadServer(f"unix://{sock_dir}/workload.sock", SVIDCache(auth))
    await server.start()
    try:
        yield f"unix://{server.path}"
    finally:
        await server.close()


def _fetch_svid(address: str) -> Any:
    from spiffe import WorkloadApiClient

    with WorkloadApiClient(address, default_timeout=10) as client:
        return client.fetch_x509_svid(), client.fetch_x509_bundles()


async def _stream(address: str, metadata: Any = HEADER) -> Any:
    channel = grpc.aio.insecure_channel(address)
    call = channel.unary_stream(
        "/SpiffeWorkloadAPI/FetchX509SVID",
        request_serializer=wl.X509SVIDRequest.SerializeToString,
        response_deserializer=wl.X509SVIDResponse.FromString,
    )(wl.X509SVIDRequest(), metadata=metadata)
    return channel, call


async def test_the_spiffe_client_gets_an_svid_for_its_attested_self(sock_dir: Path) -> None:
    auth = FakeAuth({os.getuid()})
    async with serving(sock_dir, auth) as address:
        assert os.stat(address[len("unix://") :]).st_mode & 0o777 == 0o666
        svid, bundles = await asyncio.to_thread(_fetch_svid, address)
    assert str(svid.spiffe_id) == f"spiffe://{DOMAIN}/role/ci/builder"
    leaf_key = svid.leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
    own_key = svid.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
    assert leaf_key == own_key
    bundle = bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
    assert bundle is not None
    assert auth.ca.cert in bundle.x509_authorities
    # The kernel's facts, not the caller's: this very process.
    facts = auth.asked[0]
    assert (facts.pid, facts.uid, facts.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert facts.exe == os.path.realpath(f"/proc/{os.getpid()}/exe")
    # Two calls (SVID, bundle), one answer from auth: cached while in its first half.
    assert auth.signed == 1


async def test_the_security_header_is_required(sock_dir: Path) -> None:
    auth = FakeAuth({os.getuid()})
    async with serving(sock_dir, auth) as address:
        for metadata in [(), (("workload.spiffe.io", "false"),)]:
            channel, call = await _stream(address, metadata)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call.read()
            await channel.close()
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "security header" in (err.value.details() or "")
    assert auth.asked == []


async def test_a_renewed_svid_is_pushed_and_a_removed_rule_ends_the_stream(
    sock_dir: Path,
) -> None:
    auth = FakeAuth({os.getuid()}, seconds=3)
    async with serving(sock_dir, auth) as address:
        channel, call = await _stream(address)
        first = await asyncio.wait_for(call.read(), 5)
        got_first = time.monotonic()
        second = await asyncio.wait_for(call.read(), 5)
        pushed_after = time.monotonic() - got_first
        auth.admitted.clear()  # the rule is removed in auth
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(call.read(), 5)
        await channel.close()
    serials = [x509.load_der_x509_certificate(r.svids[0].x509_svid).serial_number
               for r in (first, second)]  # fmt: skip
    assert serials[0] != serials[1]
    assert first.svids[0].x509_svid_key != second.svids[0].x509_svid_key  # a fresh key
    assert 1.0 <= pushed_after < 2.5  # at half of the 3 s lifetime
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "any more" in (err.value.details() or "")
    assert auth.signed == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming another uid needs root")
async def test_another_uid_is_refused_and_nothing_issued(sock_dir: Path) -> None:
    auth = FakeAuth({os.getuid()})
    script = (
        "import sys\nfrom spiffe import WorkloadApiClient\n"
        "try:\n    WorkloadApiClient(sys.argv[1]).fetch_x509_svid()\n"
        "except Exception as exc:\n    print(exc); sys.exit(3)\n"
    )
    async with serving(sock_dir, auth) as address:
        os.chmod(sock_dir, 0o755)  # noqa: S103 - for nobody to reach the socket
        proc = await asyncio.create_subprocess_exec(
            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            sys.executable, "-c", script, address, stdout=subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 3, out
    assert b"PERMISSION_DENIED" in out or b"no workload rule" in out, out
    assert [(f.uid, f.gid) for f in auth.asked] == [(65534, 65534)]
    assert auth.signed == 0


def test_a_peer_that_exited_is_refused(sock_dir: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_dir / "peer.sock"))
    listener.listen()
    try:
        child = subprocess.run(
            [sys.executable, "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); "
             "s.connect(sys.argv[1]); s.send(b'x')", str(sock_dir / "peer.sock")],
            check=True, timeout=30,
        )  # fmt: skip
        assert child.returncode == 0
        conn, _ = listener.accept()
        with conn, pytest.raises(NotAttested):
            attest_socket(conn)
    finally:
        listener.close()


def test_a_live_peer_is_attested(sock_dir: Path) -> None:
    left, right = socket.socketpair()
    with left, right:
        facts = attest_socket(left)
    assert (facts.pid, facts.uid) == (os.getpid(), os.getuid())


async def test_a_refusal_is_believed_for_a_while(sock_dir: Path) -> None:
    auth = FakeAuth(set())
    async with serving(sock_dir, auth) as address:
        for _ in range(3):
            channel, call = await _stream(address)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call.read()
            await channel.close()
            assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert "no workload rule admits this process" in (err.value.details() or "")
    assert len(auth.asked) == 1  # auth was asked once, not for every call
    assert auth.signed == 0


async def test_open_streams_are_bounded_per_uid(
    sock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.workload_api

    monkeypatch.setattr(agent.workload_api, "MAX_STREAMS_PER_UID", 1)
    auth = FakeAuth({os.getuid()})
    async with serving(sock_dir, auth) as address:
        channel, call = await _stream(address)
        assert (await call.read()).svids
        extra, refused = await _stream(address)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await refused.read()
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        await extra.close()
        await channel.close()
