"""SSH certificates signed by the cluster's SSH CAs (cryptography's builder; no hand-made
wire format).

Rules that hold for every user certificate:
- principals are never empty: an empty list means "any user" to OpenSSH and asyncssh;
- no principal carries ``,``, whitespace, wildcards or control characters, or is longer
  than 255 bytes;
- only Ed25519, ECDSA P-256/P-384 and RSA >= 2048 keys are certified;
- extensions come from role options only; there are no critical options.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    SSHCertificateBuilder,
    SSHCertificateType,
    load_ssh_public_key,
)

from proto import limits
from proto.errors import AlreadyExists, BadParameter, CompareFailed, NotFound
from server.auth.crypto.ca import SSHAuthority
from server.auth.stores.roles import login_problem
from server.backend import Backend, Item

CertifiableKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

ACCEPTED_KEY_TYPES = frozenset(
    {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa"}
)

HOUR = 3600.0
DEFAULT_CERT_TTL = 12 * HOUR
MAX_CERT_TTL = float(limits.MAX_CERT_TTL_SECONDS)
BACKDATE = 60.0
MAX_PRINCIPALS = 256
MAX_PUBLIC_KEY_LINE = limits.MAX_PUBLIC_KEY_LINE


def parse_public_key(line: str) -> CertifiableKey:
    """An OpenSSH public key line of an accepted type, or BadParameter."""
    if not line or len(line) > MAX_PUBLIC_KEY_LINE:
        raise BadParameter("missing or oversized public key")
    key_type = line.split(" ", 1)[0]
    if key_type.endswith("-cert-v01@openssh.com"):
        raise BadParameter("a certificate cannot be certified; send the public key")
    if key_type not in ACCEPTED_KEY_TYPES:
        raise BadParameter(
            f"key type {key_type[:40]!r} not accepted; use Ed25519, ECDSA P-256/P-384 or RSA"
            " >= 2048"
        )
    try:
        key = load_ssh_public_key(line.strip().encode())
    except (ValueError, TypeError) as exc:
        raise BadParameter("malformed public key") from exc
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name in ("secp256r1", "secp384r1"):
            return key
        raise BadParameter(f"ECDSA curve {key.curve.name} is not accepted; use P-256 or P-384")
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size >= 2048:
            return key
        raise BadParameter(f"RSA keys must be at least 2048 bits (got {key.key_size})")
    raise BadParameter("key type not accepted; use Ed25519, ECDSA P-256/P-384 or RSA >= 2048")


def validate_principal(principal: str) -> str:
    """A user certificate's principal is a login, checked by the rule logins are
    checked by everywhere (so a stored login can never block a certificate)."""
    problem = login_problem(principal)
    if problem is not None:
        raise BadParameter(f"principal {principal[:80]!r} {problem}")
    return principal


def validate_principals(principals: Iterable[str]) -> tuple[str, ...]:
    checked = tuple(dict.fromkeys(validate_principal(p) for p in principals))
    if not checked:
        raise BadParameter(
            "no principals: refusing to sign a certificate valid for any login",
            hint="the user's roles allow no logins; give the user logins or a role with logins",
        )
    if len(checked) > MAX_PRINCIPALS:
        raise BadParameter(f"at most {MAX_PRINCIPALS} principals")
    return checked


def clamp_ttl(requested: float, role_max: float) -> float:
    """The smallest of the request (0: as long as allowed), the roles' max and 30h."""
    if requested < 0:
        raise BadParameter("a negative TTL is not a TTL")
    limit = min(role_max or DEFAULT_CERT_TTL, MAX_CERT_TTL)
    return min(requested, limit) if requested else limit


@dataclass(frozen=True)
class UserCertRequest:
    user: str
    public_key: CertifiableKey
    principals: Sequence[str]
    serial: int
    valid_after: float
    valid_before: float
    extensions: Mapping[str, str]


def key_id(user: str, serial: int) -> str:
    return f"user={user} serial={serial}"


def sign_user_cert(ca: SSHAuthority, req: UserCertRequest) -> str:
    builder = (
        SSHCertificateBuilder()
        .public_key(req.public_key)
        .serial(req.serial)
        .type(SSHCertificateType.USER)
        .key_id(key_id(req.user, req.serial).encode())
        .valid_principals([p.encode() for p in validate_principals(req.principals)])
        .valid_after(int(req.valid_after))
        .valid_before(int(req.valid_before))
    )
    for name, value in sorted(req.extensions.items()):
        builder = builder.add_extension(name.encode(), value.encode())
    return builder.sign(ca.private_key).public_bytes().decode()


def sign_host_cert(
    ca: SSHAuthority,
    public_key: CertifiableKey,
    *,
    host_id: str,
    principals: Sequence[str],
    serial: int,
    valid_after: float,
    valid_before: float,
) -> str:
    builder = (
        SSHCertificateBuilder()
        .public_key(public_key)
        .serial(serial)
        .type(SSHCertificateType.HOST)
        .key_id(f"host={host_id} serial={serial}".encode())
        .valid_principals([p.encode() for p in validate_principals(principals)])
        .valid_after(int(valid_after))
        .valid_before(int(valid_before))
    )
    return builder.sign(ca.private_key).public_bytes().decode()


class SerialAllocator:
    """Certificate serials unique across restarts and auth servers: blocks of serials
    are reserved in the backend with compare-and-swap and handed out from memory."""

    KEY = "counters/cert_serial"

    def __init__(self, backend: Backend, block: int = 1000) -> None:
        self._backend = backend
        self._block = block
        self._next = 0
        self._end = 0

    async def next(self) -> int:
        if self._next >= self._end:
            await self._reserve()
        serial = self._next
        self._next += 1
        return serial

    async def _reserve(self) -> None:
        for _ in range(100):
            try:
                item: Item | None = await self._backend.get(self.KEY)
            except NotFound:
                item = None
            start = json.loads(item.value)["next"] if item else 1
            fresh = Item(key=self.KEY, value=json.dumps({"next": start + self._block}).encode())
            try:
                if item is None:
                    await self._backend.create(fresh)
                else:
                    await self._backend.compare_and_swap(item, fresh)
            except (CompareFailed, AlreadyExists):
                continue
            # A reservation that raced another coroutine of this process may have
            # refilled the block already; only adopt the newer one.
            if start >= self._end:
                self._next, self._end = start, start + self._block
            return
        raise CompareFailed("could not reserve certificate serials; try again")
