"""A SPIFFE Workload API server for tests, on a unix socket: the protocol SPIRE's agent
speaks (the `spiffe` package's own generated code), serving one SVID to any caller that
sends the ``workload.spiffe.io: true`` header, as the spec requires."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization


def _der_chain(pem: str) -> bytes:
    return b"".join(
        c.public_bytes(serialization.Encoding.DER)
        for c in x509.load_pem_x509_certificates(pem.encode())
    )


@contextmanager
def workload_api(socket: Path, svid_pem: str, key_pem: bytes, bundle_pem: str) -> Iterator[str]:
    """Serve the SVID at ``unix://socket``; yields the address for SPIFFE_ENDPOINT_SOCKET."""
    from spiffe._proto import workload_pb2, workload_pb2_grpc

    key = serialization.load_pem_private_key(key_pem, password=None)
    key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    leaf = x509.load_pem_x509_certificate(svid_pem.encode())
    uri = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    (spiffe_id,) = uri.get_values_for_type(x509.UniformResourceIdentifier)
    stop = threading.Event()
    served: list[str] = []

    class Servicer(workload_pb2_grpc.SpiffeWorkloadAPIServicer):  # type: ignore[misc]
        def FetchX509SVID(self, request: Any, context: Any) -> Iterator[Any]:
            if dict(context.invocation_metadata()).get("workload.spiffe.io") != "true":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing")
            served.append(spiffe_id)
            yield workload_pb2.X509SVIDResponse(svids=[workload_pb2.X509SVID(
                spiffe_id=spiffe_id, x509_svid=_der_chain(svid_pem), x509_svid_key=key_der,
                bundle=_der_chain(bundle_pem))])  # fmt: skip
            deadline = time.monotonic() + 30
            while context.is_active() and not stop.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(Servicer(), server)
    address = f"unix://{socket}"
    server.add_insecure_port(address)
    server.start()
    try:
        yield address
    finally:
        stop.set()
        server.stop(grace=None)
