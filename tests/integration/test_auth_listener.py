"""The auth listener as a client meets it: TLS 1.3 only, client certificates verified
when presented, every RPC behind the guard."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from proto.client import AuthClient, ClientIdentity
from proto.errors import AccessDenied, ConnectionProblem, NotAuthenticated
from proto.trust import AUTH_SERVER_NAME
from proto.v1 import auth_pb2 as pb
from server.auth.crypto.ca import _new_x509_ca
from server.auth.crypto.x509 import issue_client_cert
from server.auth.rpc.guard import UNAUTHENTICATED_METHODS
from server.auth.stores.agents import AgentRecord
from tests.servers import RunningAuth, running_auth

SERVICE = pb.DESCRIPTOR.services_by_name["AuthService"]


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[RunningAuth]:
    with running_auth(tmp_path / "data") as running:
        yield running


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def agent_identity(auth: RunningAuth, agent_id: str, kind: str = "node") -> ClientIdentity:
    """Register an agent and issue its client certificate from the cluster's CA."""
    assert auth.server.cas is not None
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_client_cert(
        auth.server.cas.host_x509,
        key.public_key(),
        agent_id=agent_id,
        kind=kind,
        cluster_name="test-cluster",
        now=auth.server.clock.now(),
        ttl=3600,
    )
    record = AgentRecord(id=agent_id, kind=kind, name=agent_id, created=0)
    auth.call(lambda: auth.server.agents.put(record))
    return ClientIdentity(
        agent_id=agent_id,
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=_pem(key),
    )


def port_of(auth: RunningAuth) -> int:
    return int(auth.addr.rsplit(":", 1)[1])


def test_ping_over_tls13_verified_by_the_host_ca(auth: RunningAuth) -> None:
    with auth.client() as client:
        reply = client.rpc.Ping(pb.PingRequest())
    assert reply.cluster_name == "test-cluster"
    assert auth.server.cas is not None
    assert reply.ca_pin == auth.server.cas.host_x509.pin


def test_python_tls13_handshake_negotiates_h2(auth: RunningAuth) -> None:
    ctx = ssl.create_default_context(cadata=auth.ca_pem.decode())
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port_of(auth)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=AUTH_SERVER_NAME) as tls,
    ):
        assert tls.version() == "TLSv1.3"
        assert tls.selected_alpn_protocol() == "h2"


def test_tls12_is_refused_at_the_handshake(auth: RunningAuth) -> None:
    ctx = ssl.create_default_context(cadata=auth.ca_pem.decode())
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", port_of(auth)), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        ctx.wrap_socket(raw, server_hostname=AUTH_SERVER_NAME)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_s_client_tls12_fails(auth: RunningAuth) -> None:
    done = subprocess.run(
        ["openssl", "s_client", "-tls1_2", "-connect", f"127.0.0.1:{port_of(auth)}"],
        input=b"",
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert done.returncode != 0
    assert b"no peer certificate available" in done.stdout
    assert b"Cipher is (NONE)" in done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_tls_max_12_fails(auth: RunningAuth, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(auth.ca_pem)
    done = subprocess.run(
        ["curl", "-sS", "--tls-max", "1.2", "--cacert", str(ca), "--http2",
         "--resolve", f"{AUTH_SERVER_NAME}:{port_of(auth)}:127.0.0.1",
         f"https://{AUTH_SERVER_NAME}:{port_of(auth)}/"],
        capture_output=True, timeout=20, check=False,
    )  # fmt: skip
    assert done.returncode == 35, done.stderr  # 35: SSL connect error


def test_plaintext_http2_fails(auth: RunningAuth) -> None:
    from proto.v1 import auth_pb2_grpc

    with grpc.insecure_channel(auth.addr) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Ping(pb.PingRequest(), timeout=5)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def _server_first_bytes(auth: RunningAuth, ctx: ssl.SSLContext) -> bytes:
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port_of(auth)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=AUTH_SERVER_NAME) as tls,
    ):
        try:
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            return tls.recv(64)
        except (ssl.SSLError, ConnectionResetError):
            return b""


def test_client_certificate_from_a_foreign_ca_fails_at_the_handshake(
    auth: RunningAuth,
) -> None:
    foreign_ca = _new_x509_ca("foreign", auth.server.clock.now())
    key = ec.generate_private_key(ec.SECP256R1())
    admin_id = auth.admin_identity().agent_id  # the real admin's id, from another CA
    cert = issue_client_cert(
        foreign_ca, key.public_key(), agent_id=admin_id, kind="admin",
        cluster_name="foreign", now=auth.server.clock.now(), ttl=3600,
    )  # fmt: skip
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_file, cert_file = auth.data_dir / "foreign.key", auth.data_dir / "foreign.pem"
    key_file.write_bytes(_pem(key))
    cert_file.write_bytes(cert_pem)
    with_foreign = ssl.create_default_context(cadata=auth.ca_pem.decode())
    with_foreign.load_cert_chain(cert_file, key_file)
    # In TLS 1.3 the client finishes its side of the handshake before the server checks
    # its certificate, so the refusal shows as an alert or a close before any HTTP/2 byte;
    # without a certificate the same bytes get the server's SETTINGS frame.
    assert _server_first_bytes(auth, with_foreign) == b""
    assert _server_first_bytes(auth, ssl.create_default_context(cadata=auth.ca_pem.decode()))
    # And grpcio, the clients' stack, cannot call anything with it.
    spoof = ClientIdentity(agent_id=admin_id, cert_pem=cert_pem, key_pem=_pem(key))
    with (
        AuthClient(auth.addr, auth.ca_pem, spoof, timeout=5) as client,
        pytest.raises(ConnectionProblem),
    ):
        client.rpc.Ping(pb.PingRequest())


def test_valid_agent_certificate_is_seen_by_the_interceptor(auth: RunningAuth) -> None:
    with auth.admin() as client:
        status = client.rpc.GetClusterStatus(pb.GetClusterStatusRequest())
    assert status.caller == f"agent:{auth.admin_identity().agent_id}"
    node = agent_identity(auth, "node-1")
    with auth.client(node) as client, pytest.raises(AccessDenied):
        client.rpc.GetClusterStatus(pb.GetClusterStatusRequest())


def test_agent_id_without_a_client_certificate_is_unauthenticated(auth: RunningAuth) -> None:
    with (
        auth.client(ClientIdentity(agent_id="local-admin")) as client,
        pytest.raises(NotAuthenticated, match="client certificate"),
    ):
        client.rpc.GetClusterStatus(pb.GetClusterStatusRequest())


def test_agent_id_naming_another_agents_certificate_is_unauthenticated(
    auth: RunningAuth,
) -> None:
    node1 = agent_identity(auth, "node-1")
    agent_identity(auth, "node-2")
    spoof = ClientIdentity(agent_id="node-2", cert_pem=node1.cert_pem, key_pem=node1.key_pem)
    with auth.client(spoof) as client, pytest.raises(NotAuthenticated, match="does not match"):
        client.rpc.EmitAuditEvent(pb.EmitAuditEventRequest())
    # The admin's id with a node's certificate is no way to admin rights either.
    admin_id = auth.admin_identity().agent_id
    spoof = ClientIdentity(agent_id=admin_id, cert_pem=node1.cert_pem, key_pem=node1.key_pem)
    with auth.client(spoof) as client, pytest.raises(NotAuthenticated):
        client.rpc.GetClusterStatus(pb.GetClusterStatusRequest())


def test_locked_agent_is_denied_and_unregistered_is_unauthenticated(auth: RunningAuth) -> None:
    node = agent_identity(auth, "node-1")
    with auth.admin() as admin:
        admin.rpc.CreateLock(pb.CreateLockRequest(target=pb.LockTarget(node="node-1"), reason="t"))
    with auth.client(node) as client:
        with pytest.raises(AccessDenied, match="locked"):
            client.rpc.RenewHostCerts(pb.RenewHostCertsRequest())
        # Still heard: what a locked node did about its lock is worth an audit record.
        client.rpc.EmitAuditEvent(pb.EmitAuditEventRequest())
    auth.backend_call(lambda backend: backend.delete("agents/node-1"))
    with auth.client(node) as client, pytest.raises(NotAuthenticated):
        client.rpc.EmitAuditEvent(pb.EmitAuditEventRequest())


def _raw_call(
    channel: grpc.Channel, method: str, metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.StatusCode:
    """Call any method of the service with an empty request; return the status."""
    desc = SERVICE.methods_by_name[method]
    path = f"/{SERVICE.full_name}/{method}"
    req_cls = getattr(pb, desc.input_type.name)
    ser, de = req_cls.SerializeToString, lambda b: b
    try:
        if desc.client_streaming:
            call = channel.stream_stream(path, request_serializer=ser, response_deserializer=de)
            list(call(iter([req_cls()]), metadata=metadata, timeout=10))
        elif desc.server_streaming:
            call = channel.unary_stream(path, request_serializer=ser, response_deserializer=de)
            list(call(req_cls(), metadata=metadata, timeout=10))
        else:
            channel.unary_unary(path, request_serializer=ser, response_deserializer=de)(
                req_cls(), metadata=metadata, timeout=10
            )
    except grpc.RpcError as err:
        return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


@pytest.fixture
def channel(auth: RunningAuth) -> Iterator[grpc.Channel]:
    # A raw channel, without the client layer's interceptors: these tests send exactly
    # the metadata they mean to.
    from proto.trust import AUTH_SERVER_NAME

    credentials = grpc.ssl_channel_credentials(root_certificates=auth.ca_pem)
    options = [("grpc.ssl_target_name_override", AUTH_SERVER_NAME)]
    with grpc.secure_channel(auth.addr, credentials, options=options) as ch:
        yield ch


def test_every_authenticated_rpc_is_refused_without_credentials(
    channel: grpc.Channel,
) -> None:
    refused = {
        m.name: _raw_call(channel, m.name)
        for m in SERVICE.methods
        if f"/{SERVICE.full_name}/{m.name}" not in UNAUTHENTICATED_METHODS
    }
    assert len(refused) >= 20
    assert set(refused.values()) == {grpc.StatusCode.UNAUTHENTICATED}, refused


@pytest.mark.parametrize(
    "metadata",
    [
        (("authorization", "Bearer " + "a" * 30), ("authorization", "Bearer " + "b" * 30)),
        (("authorization", "bearer " + "a" * 30),),
        (("authorization", "Bearer  " + "a" * 30),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer " + "a" * 300),),
        (("authorization", "Bearer " + "a" * 30), ("x-agent-id", "local-admin")),
        (("x-agent-id", "local-admin"), ("x-agent-id", "local-admin")),
        (("x-agent-id", "a" * 200),),
        (("x-agent-id", "../etc"),),
    ],
    ids=["two-bearers", "lowercase-scheme", "double-space", "basic", "too-long",
         "bearer-and-agent", "two-agent-ids", "long-agent-id", "bad-agent-id"],
)  # fmt: skip
def test_malformed_credentials_are_refused_even_on_open_methods(
    channel: grpc.Channel, metadata: tuple[tuple[str, str], ...]
) -> None:
    assert _raw_call(channel, "Ping", metadata) is grpc.StatusCode.UNAUTHENTICATED
    assert _raw_call(channel, "ListUsers", metadata) is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "path",
    [
        "/mezite.v1.AuthService/ping",
        "/mezite.v1.AuthService/Ping/",
        "/mezite.v1.AuthService/PingX",
        "/mezite.v1.authservice/Ping",
        "/mezite.v1.AuthService//Ping",
    ],
)
def test_method_paths_must_match_exactly(channel: grpc.Channel, path: str) -> None:
    call = channel.unary_unary(path, request_serializer=lambda m: b"", response_deserializer=bytes)
    with pytest.raises(grpc.RpcError) as info:
        call(b"", timeout=5)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_open_rpcs_still_pass_the_guard_first(channel: grpc.Channel) -> None:
    bad = (("authorization", "bearer nope"),)
    assert _raw_call(channel, "AuthenticateSPIFFE", bad) is grpc.StatusCode.UNAUTHENTICATED
    # Without a credential the handler runs, and refuses the empty request itself.
    assert _raw_call(channel, "AuthenticateSPIFFE") is grpc.StatusCode.INVALID_ARGUMENT


def test_oversized_messages_are_refused(auth: RunningAuth) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=auth.ca_pem)
    options = [
        ("grpc.ssl_target_name_override", AUTH_SERVER_NAME),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ]
    with grpc.secure_channel(auth.addr, creds, options=options) as ch:
        call = ch.unary_unary(
            f"/{SERVICE.full_name}/AuthenticateLocal",
            request_serializer=pb.AuthenticateLocalRequest.SerializeToString,
            response_deserializer=pb.AuthenticateLocalResponse.FromString,
        )
        huge = pb.AuthenticateLocalRequest(username="x", password="p" * (5 * 1024 * 1024))
        with pytest.raises(grpc.RpcError) as info:
            call(huge, timeout=20)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_server_certificate_names_the_auth_service(auth: RunningAuth) -> None:
    chain = (auth.data_dir / "tls" / "server.pem").read_bytes()
    leaf, ca = x509.load_pem_x509_certificates(chain)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert AUTH_SERVER_NAME in names.get_values_for_type(x509.DNSName)
    leaf.verify_directly_issued_by(ca)
    assert ca.public_bytes(serialization.Encoding.PEM) == auth.ca_pem
