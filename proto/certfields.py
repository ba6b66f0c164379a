"""The two fields of an OpenSSH certificate that `mez ssh` reads on every run: when it
expires (reissue it first?) and the logins it allows (the default login).

Read straight from the wire format (OpenSSH's PROTOCOL.certkeys) because importing
cryptography is ~20 ms of `mez ssh`'s start-up. Nothing here is a trust decision: nodes
and the proxy verify the certificate; a client only decides whether to ask for a new one
and which login to offer. Anything this reader does not know (another key type, a
malformed blob) goes to cryptography's parser, which decides as before."""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

# How many length-prefixed fields the certified public key has, after the nonce.
_KEY_FIELDS = {
    b"ssh-ed25519-cert-v01@openssh.com": 1,  # pk
    b"ssh-rsa-cert-v01@openssh.com": 2,  # e, n
    b"ecdsa-sha2-nistp256-cert-v01@openssh.com": 2,  # curve, Q
    b"ecdsa-sha2-nistp384-cert-v01@openssh.com": 2,
    b"ecdsa-sha2-nistp521-cert-v01@openssh.com": 2,
}


@dataclass(frozen=True)
class CertFields:
    valid_before: float  # 0 when the line is a plain key, not a certificate
    principals: tuple[str, ...]


class _Blob:
    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def take(self, size: int) -> bytes:
        if size < 0 or self._at + size > len(self._data):
            raise ValueError("truncated certificate")
        part = self._data[self._at : self._at + size]
        self._at += size
        return part

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def string(self) -> bytes:
        return self.take(self.uint(4))

    def left(self) -> int:
        return len(self._data) - self._at


def _fast(line: bytes) -> CertFields:
    blob = _Blob(base64.b64decode(line.split()[1], validate=True))
    fields = _KEY_FIELDS.get(blob.string())
    if fields is None:
        raise ValueError("not a key type this reader knows")
    blob.string()  # nonce
    for _ in range(fields):
        blob.string()
    blob.uint(8)  # serial
    blob.uint(4)  # certificate type
    blob.string()  # key id
    packed = _Blob(blob.string())
    principals = []
    while packed.left():
        principals.append(packed.string().decode(errors="replace"))
    blob.uint(8)  # valid after
    return CertFields(float(blob.uint(8)), tuple(principals))


def _with_cryptography(line: bytes) -> CertFields:
    from cryptography.hazmat.primitives.serialization import (
        SSHCertificate,
        load_ssh_public_identity,
    )

    cert = load_ssh_public_identity(line)
    if not isinstance(cert, SSHCertificate):
        return CertFields(0.0, ())
    return CertFields(
        float(cert.valid_before), tuple(p.decode(errors="replace") for p in cert.valid_principals)
    )


def cert_fields(line: bytes) -> CertFields:
    try:
        return _fast(line)
    except (ValueError, IndexError, binascii.Error, struct.error):
        return _with_cryptography(line)
