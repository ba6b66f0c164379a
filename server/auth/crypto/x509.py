"""X.509 certificates issued by the host X.509 CA: TLS server certificates for auth and
proxy, and client certificates that name an agent (subject CN = agent id, OU = kind)."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proto.errors import BadParameter
from server.auth.crypto.ca import X509Authority

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def _utc(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _base(
    ca: X509Authority, public_key: PublicKey, subject: x509.Name, now: float, ttl: float
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_utc(now - 60))
        .not_valid_after(_utc(now + ttl))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    )


def issue_server_cert(
    ca: X509Authority,
    public_key: PublicKey,
    *,
    common_name: str,
    names: Sequence[str],
    now: float,
    ttl: float,
) -> x509.Certificate:
    """A TLS server certificate for ``names`` (DNS names or IP literals)."""
    if not names:
        raise BadParameter("a server certificate needs at least one name")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        _base(ca, public_key, subject, now, ttl)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.private_key, hashes.SHA256())
    )


def issue_client_cert(
    ca: X509Authority,
    public_key: PublicKey,
    *,
    agent_id: str,
    kind: str,
    cluster_name: str,
    now: float,
    ttl: float,
) -> x509.Certificate:
    """A TLS client certificate naming an agent: CN = agent id, OU = kind, O = cluster."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind),
            x509.NameAttribute(NameOID.COMMON_NAME, agent_id),
        ]
    )
    return (
        _base(ca, public_key, subject, now, ttl)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.private_key, hashes.SHA256())
    )
