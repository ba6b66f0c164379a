"""Who may log in: the checks a user certificate must pass at a node or the proxy.

Shared by nodes (agent/sshd) and the proxy's SSH hop (server/proxy), so both hold user
certificates to one set of rules.

asyncssh verifies the CA signature, the validity window (against the real clock) and
the principal, but it accepts a certificate with no principals for every login and it
drops the extensions it does not know, Mezite's node-access rules among them. So the
certificate is read here a second time, with cryptography's parser, and held to
Mezite's rules before asyncssh's own checks run:

- the client did not sign with SHA-1 RSA (``ssh-rsa``), refused as OpenSSH 8.8 does;
- it is an OpenSSH *user* certificate of an accepted key type, signed by a trusted
  user CA (signature verified);
- it has principals and the requested login is one of them (exact match);
- it is valid now by the injected clock;
- it carries no critical options (Mezite never issues any; ``force-command`` and
  ``source-address`` would otherwise need enforcing, so they are refused);
- it names a Mezite user or agent identity and its incarnation, and its node-access
  rules allow this node's labels.

Whether a lock refuses the holder is the caller's question (``CertIdentity.subject``),
asked of what the node or proxy knows of the locks in force.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    SSHCertificate,
    SSHCertificateType,
    load_ssh_public_identity,
    load_ssh_public_key,
)

from proto.access import (
    CERT_KINDS,
    INCARNATION_EXT,
    KIND_EXT,
    NO_RECORD_EXT,
    NODE_ACCESS_EXT,
    ROLES_EXT,
    USER_EXT,
    node_access_allows,
)
from proto.locks import Subject

CERT_SUFFIX = b"-cert-v01@openssh.com"
ACCEPTED_CERT_TYPES = frozenset(
    {
        b"ssh-ed25519" + CERT_SUFFIX,
        b"ecdsa-sha2-nistp256" + CERT_SUFFIX,
        b"ecdsa-sha2-nistp384" + CERT_SUFFIX,
        b"ssh-rsa" + CERT_SUFFIX,
    }
)
MIN_RSA_BITS = 2048
MAX_KEY_BLOB = 16 * 1024
# OpenSSH's SHA-1 RSA signature; refused as OpenSSH itself does since 8.8.
SHA1_RSA_SIGNATURE = b"ssh-rsa"


NODE_ACCESS_REFUSED = "node access denied by the user's roles"


class AuthRefused(Exception):
    """A login that this node refuses; ``reason`` is safe to log and audit."""

    def __init__(self, reason: str, *, key_id: str = "", serial: int | None = None, user: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.key_id = key_id
        self.serial = serial
        self.user = user


@dataclass(frozen=True)
class CertIdentity:
    """What a verified certificate says about the person behind it."""

    user: str
    roles: tuple[str, ...]
    key_id: str
    serial: int
    principals: tuple[str, ...]
    valid_before: int
    permit_pty: bool
    permit_port_forwarding: bool
    permit_agent_forwarding: bool
    record_sessions: bool = True  # PTY sessions of this certificate are recorded
    node_access: bytes = b""  # the signed node-label rules, for decisions made later
    kind: str = "user"  # "user" or "agent_identity"
    incarnation: str = ""

    def subject(self, *, login: str = "", node: str = "") -> Subject:
        """Who holds this certificate, for lock matching."""
        return Subject(self.kind, self.user, self.incarnation, self.roles, login=login, node=node)


class TrustedUserCAs:
    """The user CA keys this node trusts, as SSH public key blobs; replaceable in
    place when the cluster rotates its CA."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._blobs: frozenset[bytes] = frozenset()
        self.replace(lines)

    def replace(self, lines: Iterable[str]) -> None:
        blobs = frozenset(ca_key_blob(line) for line in lines if line.strip())
        if not blobs:
            raise ValueError("at least one user CA key is required")
        self._blobs = blobs

    def trusts(self, blob: bytes) -> bool:
        return blob in self._blobs


def ca_key_blob(line: str) -> bytes:
    """The SSH wire encoding of a public key line (``type base64 [comment]``)."""
    fields = line.strip().split()
    if len(fields) < 2:
        raise ValueError("a CA key must be an OpenSSH public key line")
    # Parsing proves the line is a key of a known type, not just any base64.
    load_ssh_public_key(f"{fields[0]} {fields[1]}".encode())
    return base64.b64decode(fields[1], validate=True)


def _key_type(blob: bytes) -> bytes:
    if len(blob) < 4:
        return b""
    (length,) = struct.unpack(">I", blob[:4])
    return blob[4 : 4 + length] if length <= 64 else b""


def is_sha1_rsa_signature(signature: bytes) -> bool:
    return _key_type(signature) == SHA1_RSA_SIGNATURE


def parse_certificate(key_data: bytes) -> SSHCertificate:
    """A user's offered key as a certificate, or AuthRefused (plain keys included)."""
    if len(key_data) > MAX_KEY_BLOB:
        raise AuthRefused("offered key is too large")
    key_type = _key_type(key_data)
    if not key_type.endswith(CERT_SUFFIX):
        raise AuthRefused("plain public keys are not accepted; a Mezite certificate is required")
    if key_type not in ACCEPTED_CERT_TYPES:
        raise AuthRefused(f"certificate type {key_type[:64].decode(errors='replace')} not accepted")
    line = key_type + b" " + base64.b64encode(key_data)
    try:
        cert = load_ssh_public_identity(line)
    except (ValueError, UnsupportedAlgorithm, binascii.Error) as exc:
        raise AuthRefused("malformed certificate") from exc
    if not isinstance(cert, SSHCertificate):
        raise AuthRefused("malformed certificate")
    return cert


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _key_accepted(cert: SSHCertificate) -> bool:
    key = cert.public_key()
    if isinstance(key, ed25519.Ed25519PublicKey):
        return True
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.name in ("secp256r1", "secp384r1")
    return isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS


def _signer_blob(cert: SSHCertificate) -> bytes:
    line = cert.signature_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def _refusal(
    cert: SSHCertificate,
    login: str,
    trusted: TrustedUserCAs,
    labels: Mapping[str, str] | None,
    now: float,
) -> str | None:
    """Why ``cert`` may not log in as ``login`` here, or None. Cheap checks first, the
    signature before anything that trusts the certificate's content."""
    try:
        cert_type = cert.type
    except ValueError:
        return "unknown certificate type"
    if cert_type is not SSHCertificateType.USER:
        return "not a user certificate"
    if not trusted.trusts(_signer_blob(cert)):
        return "certificate not signed by a trusted user CA"
    try:
        cert.verify_cert_signature()
    except InvalidSignature:
        return "bad certificate signature"
    if not _key_accepted(cert):
        return "certified key type or size not accepted"
    if cert.critical_options:
        names = ",".join(sorted(_text(name) for name in cert.critical_options))
        return f"critical options not supported: {names[:200]}"
    principals = [_text(p) for p in cert.valid_principals]
    if not principals:
        # OpenSSH and asyncssh read "no principals" as "any login"; Mezite never
        # issues such a certificate, so one that turns up is refused.
        return "certificate has no principals"
    if login not in principals:
        return "login not among the certificate's principals"
    if now < cert.valid_after:
        return "certificate not yet valid"
    if now >= cert.valid_before:
        return "certificate expired"
    if not cert.extensions.get(USER_EXT.encode()):
        return "certificate names no Mezite user"
    if _text(cert.extensions.get(KIND_EXT.encode(), b"")) not in CERT_KINDS:
        return "certificate names no Mezite user kind (issued by an older auth service?)"
    if not cert.extensions.get(INCARNATION_EXT.encode()):
        # Without it a lock cannot tell this holder from a re-created one of the name.
        return "certificate names no incarnation (issued by an older auth service?)"
    # labels=None: the caller (the proxy hop) decides node access per destination.
    if labels is not None and not node_access_allows(
        cert.extensions.get(NODE_ACCESS_EXT.encode()), labels
    ):
        return NODE_ACCESS_REFUSED
    return None


def check_user_certificate(
    key_data: bytes,
    login: str,
    *,
    signature: bytes,
    trusted: TrustedUserCAs,
    labels: Mapping[str, str] | None,
    now: float,
) -> CertIdentity:
    """The identity in ``key_data`` if it may log in as ``login`` here, else AuthRefused.

    ``signature`` is the client's signature (empty for a probe that only asks whether
    the key would do): asyncssh verifies it with any algorithm the key supports, so a
    SHA-1 ``ssh-rsa`` one is refused here, on every listener."""
    if signature and is_sha1_rsa_signature(signature):
        raise AuthRefused("SHA-1 RSA signatures are not accepted")
    cert = parse_certificate(key_data)
    key_id = _text(cert.key_id)[:256]
    user = _text(cert.extensions.get(USER_EXT.encode(), b""))[:256]
    reason = _refusal(cert, login, trusted, labels, now)
    if reason is not None:
        raise AuthRefused(reason, key_id=key_id, serial=cert.serial, user=user)
    extensions = cert.extensions
    roles = _text(extensions.get(ROLES_EXT.encode(), b""))
    return CertIdentity(
        user=user,
        roles=tuple(r for r in roles.split(",") if r),
        key_id=key_id,
        serial=cert.serial,
        principals=tuple(_text(p) for p in cert.valid_principals),
        valid_before=cert.valid_before,
        permit_pty=b"permit-pty" in extensions,
        permit_port_forwarding=b"permit-port-forwarding" in extensions,
        permit_agent_forwarding=b"permit-agent-forwarding" in extensions,
        record_sessions=NO_RECORD_EXT.encode() not in extensions,
        node_access=extensions.get(NODE_ACCESS_EXT.encode(), b""),
        kind=_text(extensions[KIND_EXT.encode()]),
        incarnation=_text(extensions[INCARNATION_EXT.encode()])[:64],
    )
