"""First contact with a cluster: find its CA certificate by pin.

The client knows only an address and a CA pin. It asks the auth service for its CA
bundle over a TLS connection that verifies nothing yet (grpclib over Python's ssl: grpcio
cannot skip verification), then keeps only the CA whose key hashes to the pin. Nothing
secret is sent on that connection; every later call (tokens, passwords) goes over grpcio
verified against the pinned CA, so a server that cannot present a certificate from that
CA never sees them."""

from __future__ import annotations

import asyncio
import ssl

from proto.addr import HostPort
from proto.errors import ConnectionProblem, LimitExceeded, TrustFailure, from_grpc_status
from proto.trust import parse_pin, select_pinned_ca

BOOTSTRAP_TIMEOUT = 15.0


def _split(addr: str) -> tuple[str, int]:
    target = HostPort.parse(addr)
    return target.host, target.port


async def _fetch_bundle(addr: str) -> str:
    from grpclib.client import Channel

    from proto.v1 import auth_grpc, auth_pb2

    host, port = _split(addr)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # verified below, by pin, before anything is trusted
    ctx.set_alpn_protocols(["h2"])
    channel = Channel(host, port, ssl=ctx)
    try:
        stub = auth_grpc.AuthServiceStub(channel)
        reply = await stub.GetClusterCAs(auth_pb2.GetClusterCAsRequest(), timeout=BOOTSTRAP_TIMEOUT)
    finally:
        channel.close()
        # Let the transport finish closing before asyncio.run tears the loop down.
        await asyncio.sleep(0.01)
    bundle = [ca.public_data for ca in reply.authorities if ca.kind == "host_x509"]
    if not bundle:
        raise TrustFailure("the server offered no host CA")
    return "".join(bundle)


def _fetch(addrs: str) -> str:
    """The bundle from the first of ``addrs`` (``a:3025,b:3025``) that answers."""
    from proto.addr import parse_addr_list

    problem: ConnectionProblem | None = None
    for addr in parse_addr_list(addrs):
        try:
            return _fetch_one(str(addr))
        except ConnectionProblem as err:
            problem = err
    assert problem is not None
    raise problem


def _fetch_one(addr: str) -> str:
    try:
        return asyncio.run(asyncio.wait_for(_fetch_bundle(addr), BOOTSTRAP_TIMEOUT))
    except TrustFailure:
        raise
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise ConnectionProblem(f"cannot reach the auth service at {addr}: {exc}") from exc
    except Exception as exc:  # grpclib's own errors: the peer is not a Mezite auth service
        refused = _refusal(exc)
        if refused is not None:
            raise LimitExceeded(
                f"the auth service at {addr} refused the call: {refused.message}",
                hint="this address made too many unauthenticated calls; wait a minute and retry",
            ) from exc
        raise ConnectionProblem(f"{addr} did not answer as a Mezite auth service: {exc}") from exc


def _refusal(exc: Exception) -> LimitExceeded | None:
    """The rate limit's refusal, when ``exc`` is one (a status a Mezite auth service
    sends before it answers anything else); None for everything else."""
    from grpclib.exceptions import GRPCError

    if isinstance(exc, GRPCError):
        err = from_grpc_status(exc.status.name, exc.message or exc.status.name)
        if isinstance(err, LimitExceeded):
            return err
    return None


def fetch_unverified_ca(addr: str) -> tuple[str, str]:
    """The CA the server at ``addr`` offers and its pin, NOT verified: for a
    trust-on-first-use prompt that shows the pin to a person before anything is sent."""
    from proto.trust import spki_pin

    bundle = _fetch(addr)
    return bundle, spki_pin(bundle)


def fetch_ca_by_pin(addr: str, pin: str) -> str:
    """The PEM of the cluster CA at ``addr`` whose key matches ``pin``."""
    return select_pinned_ca(_fetch(addr), parse_pin(pin))
