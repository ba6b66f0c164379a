"""The cluster's certificate authorities: created on first start, kept in the backend.

- user SSH CA (Ed25519): signs user certificates; nodes and sshd trust it.
- host SSH CA (Ed25519): signs host certificates; clients trust it via @cert-authority.
- host X.509 CA (ECDSA P-256): signs the TLS certificates of auth and proxy and the client
  certificates of agents. Its SPKI hash is the cluster's CA pin.

Creation goes through ``Backend.create`` so that two auth servers starting at once on one
backend end up with the same CAs: the loser of the race reads the winner's.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from proto.clock import Clock
from proto.errors import AlreadyExists, BadParameter, Internal, NotFound
from proto.trust import spki_pin
from server.backend import Backend, Item

log = logging.getLogger(__name__)

CLUSTER_NAME_KEY = "cluster/name"
CA_KEY_PREFIX = "authorities/"
TRUST_DOMAIN_KEY = "cluster/spiffe_trust_domain"
X509_CA_LIFETIME = datetime.timedelta(days=3650)
_CLUSTER_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")


def ssh_fingerprint(public_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line (as `ssh-keygen -l` prints)."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class SSHAuthority:
    kind: str
    private_key: ed25519.Ed25519PrivateKey

    @cached_property  # an authority's keys never change: answers carry it on every call
    def public_line(self) -> str:
        """The CA's OpenSSH public key line, as known_hosts and TrustedUserCAKeys want it."""
        return (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )

    @property
    def public_blob(self) -> bytes:
        """The CA's public key in SSH wire format (what a KRL names a CA by)."""
        import base64

        return base64.b64decode(self.public_line.split()[1])

    @property
    def fingerprint(self) -> str:
        return ssh_fingerprint(self.public_line)


@dataclass(frozen=True)
class X509Authority:
    private_key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    kind: str = "host_x509"  # or "spiffe_x509": trusted for SVIDs and nothing else

    @cached_property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def pin(self) -> str:
        return spki_pin(self.cert_pem)


@dataclass(frozen=True)
class Authorities:
    cluster_name: str
    user_ssh: SSHAuthority
    host_ssh: SSHAuthority
    host_x509: X509Authority
    spiffe_x509: X509Authority
    trust_domain: str  # the SPIFFE trust domain the spiffe_x509 CA signs for


def validate_cluster_name(name: str) -> str:
    if not _CLUSTER_NAME_RE.fullmatch(name):
        raise BadParameter(
            f"invalid cluster name {name[:80]!r}",
            hint="use 1-63 lower-case letters, digits, dots and dashes",
        )
    return name


def _pem_private(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _new_x509_ca(cluster_name: str, now: float) -> X509Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{cluster_name} host CA"),
        ]
    )
    start = datetime.datetime.fromtimestamp(now, datetime.UTC) - datetime.timedelta(minutes=1)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + X509_CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return X509Authority(private_key=key, cert=cert)


def _encode(authority: SSHAuthority | X509Authority) -> bytes:
    if isinstance(authority, SSHAuthority):
        doc = {"kind": authority.kind, "private_key": _pem_private(authority.private_key)}
    else:
        doc = {
            "kind": authority.kind,
            "private_key": _pem_private(authority.private_key),
            "cert": authority.cert_pem,
        }
    return json.dumps(doc).encode()


def _decode_ssh(kind: str, value: bytes) -> SSHAuthority:
    doc = json.loads(value)
    key = serialization.load_pem_private_key(doc["private_key"].encode(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey) or doc.get("kind") != kind:
        raise Internal(f"stored {kind} CA is corrupt")
    return SSHAuthority(kind=kind, private_key=key)


def _decode_x509(value: bytes, kind: str = "host_x509") -> X509Authority:
    doc = json.loads(value)
    key = serialization.load_pem_private_key(doc["private_key"].encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or doc.get("kind", kind) != kind:
        raise Internal(f"stored {kind} CA is corrupt")
    cert = x509.load_pem_x509_certificate(doc["cert"].encode())
    return X509Authority(private_key=key, cert=cert, kind=kind)


async def _create_or_read(backend: Backend, key: str, fresh: bytes) -> bytes:
    try:
        await backend.create(Item(key=key, value=fresh))
        log.info("created %s", key)
        return fresh
    except AlreadyExists:
        return (await backend.get(key)).value


async def _cluster_name(backend: Backend, configured: str) -> str:
    validate_cluster_name(configured)
    try:
        stored = (await backend.get(CLUSTER_NAME_KEY)).value.decode()
    except NotFound:
        stored = (await _create_or_read(backend, CLUSTER_NAME_KEY, configured.encode())).decode()
    if stored != configured:
        raise BadParameter(
            f"this data dir belongs to cluster {stored!r}, but the configuration names "
            f"{configured!r}",
            hint=f"set cluster_name = {stored!r}, or start with a new data dir",
        )
    return stored


async def load_or_create_authorities(
    backend: Backend, cluster_name: str, clock: Clock, trust_domain: str | None = None
) -> Authorities:
    """The cluster's CAs: read from the backend, or created there on first start (each
    by a create that only one of several auth servers wins)."""
    from server.auth.crypto.svid import new_spiffe_ca, validate_trust_domain

    name = await _cluster_name(backend, cluster_name)
    domain = await _stored_setting(
        backend, TRUST_DOMAIN_KEY, validate_trust_domain(trust_domain or name),
        "auth.spiffe_trust_domain", configured=trust_domain is not None,
    )  # fmt: skip

    async def ssh_ca(kind: str) -> SSHAuthority:
        key = CA_KEY_PREFIX + kind
        try:
            value = (await backend.get(key)).value
        except NotFound:
            fresh = SSHAuthority(kind=kind, private_key=ed25519.Ed25519PrivateKey.generate())
            value = await _create_or_read(backend, key, _encode(fresh))
        return _decode_ssh(kind, value)

    async def x509_ca(kind: str, new: Callable[[], X509Authority]) -> X509Authority:
        key = CA_KEY_PREFIX + kind
        try:
            value = (await backend.get(key)).value
        except NotFound:
            value = await _create_or_read(backend, key, _encode(new()))
        return _decode_x509(value, kind)

    return Authorities(
        cluster_name=name,
        user_ssh=await ssh_ca("user_ssh"),
        host_ssh=await ssh_ca("host_ssh"),
        host_x509=await x509_ca("host_x509", lambda: _new_x509_ca(name, clock.now())),
        spiffe_x509=await x509_ca("spiffe_x509", lambda: new_spiffe_ca(name, domain, clock.now())),
        trust_domain=domain,
    )


async def _stored_setting(
    backend: Backend, key: str, value: str, setting: str, *, configured: bool
) -> str:
    """A setting fixed at first start (``value``, the configured one or its default):
    stored then; a later start that configures it must agree."""
    try:
        stored = (await backend.get(key)).value.decode()
    except NotFound:
        stored = (await _create_or_read(backend, key, value.encode())).decode()
    if configured and stored != value:
        raise BadParameter(
            f"this data dir's {setting} is {stored!r}, but the configuration names {value!r}",
            hint=f"set {setting} = {stored!r} (it is fixed at the first start)",
        )
    return stored
