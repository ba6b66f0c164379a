"""Fresh key pairs for an agent (a node or a proxy): an Ed25519 SSH host key and ECDSA
P-256 TLS keys, generated where they are used so that private keys never leave the
machine."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


@dataclass(frozen=True)
class NodeKeys:
    ssh_private_pem: str = field(repr=False)
    ssh_public_line: str
    tls_private_pem: str = field(repr=False)
    tls_public_pem: str


@dataclass(frozen=True)
class TLSKey:
    private_pem: str = field(repr=False)
    public_pem: str


def new_tls_key() -> TLSKey:
    key = ec.generate_private_key(ec.SECP256R1())
    return TLSKey(
        private_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        public_pem=key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )


def new_node_keys() -> NodeKeys:
    ssh_key = ed25519.Ed25519PrivateKey.generate()
    tls_key = new_tls_key()
    return NodeKeys(
        ssh_private_pem=ssh_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode(),
        ssh_public_line=ssh_key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode(),
        tls_private_pem=tls_key.private_pem,
        tls_public_pem=tls_key.public_pem,
    )
