"""What a SPIFFE login signs, shared by the client that signs it (``mez login --spiffe``)
and auth, which verifies it (``server.auth.crypto.svid.verify_proof``).

The proof of possession is the SVID key's signature over ``PROOF_CONTEXT NUL cluster NUL
SSH public key (type and base64) NUL time`` (whole epoch seconds): bound to this cluster,
this SSH key and this moment, so neither a stolen chain (public data) nor a proof made
for another key, cluster or time gets a certificate. ECDSA signs with SHA-256 (P-256) or
SHA-384 (P-384), Ed25519 as itself, RSA with PSS over SHA-256 (salt 32 bytes)."""

from __future__ import annotations

from typing import Any

PROOF_CONTEXT = b"mezite-spiffe-proof-v1"


def proof_message(cluster_name: str, ssh_public_key: str, proof_time: int) -> bytes:
    key = b" ".join(ssh_public_key.encode().split()[:2])
    return b"\0".join([PROOF_CONTEXT, cluster_name.encode(), key, str(proof_time).encode()])


def sign_proof(
    private_key: Any, cluster_name: str, ssh_public_key: str, now: float
) -> tuple[bytes, int]:
    """The signature and the time it names, by ``private_key`` (the SVID's)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    proof_time = int(now)
    message = proof_message(cluster_name, ssh_public_key, proof_time)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if private_key.curve.name == "secp384r1" else hashes.SHA256()
        return private_key.sign(message, ec.ECDSA(digest)), proof_time
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(message), proof_time
    if isinstance(private_key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return private_key.sign(message, pss, hashes.SHA256()), proof_time
    raise TypeError(f"an SVID key cannot be a {type(private_key).__name__}")
