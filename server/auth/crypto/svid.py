"""SPIFFE X.509 SVIDs: Mezite's SPIFFE CA, the SVIDs it signs, the one ID grammar, and
the checks an SVID must pass before AuthenticateSPIFFE trades it for an SSH certificate.

**IDs.** ``spiffe://<trust domain>/role/<role>[/<workload>]``: the trust domain is
lower-case letters, digits, ``.``, ``-`` and ``_``; each path segment is letters, digits,
``.``, ``-`` and ``_`` (never ``.`` or ``..``), compared case-sensitively, with no
percent-decoding (a ``%`` is refused); the whole ID is at most 255 bytes.

**Issued SVIDs** follow the X509-SVID spec: one URI SAN (critical, the subject being
empty), not a CA, KeyUsage digitalSignature (critical) only, AKI, EKU clientAuth and
serverAuth. The SPIFFE CA is its own key, trusted for nothing but SVIDs.

**Verification** picks the bundle by the leaf's trust domain (a domain vouches only for
its own IDs), then cryptography's client verifier chains the leaf to that bundle now;
before that the leaf must have exactly one URI SAN, of scheme spiffe, and the leaf rules.

**Proof of possession** (``proto.spiffe``): the SVID's key signs the cluster, the SSH key
and the time; a chain alone (public data) never gets a certificate.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proto.errors import BadParameter, NotAuthenticated
from proto.spiffe import proof_message
from server.auth.crypto.ca import X509Authority

MAX_ID_BYTES = 255
MAX_CHAIN_PEM = 64 * 1024
MAX_CHAIN_CERTS = 4
PROOF_SKEW = 5 * 60.0
SPIFFE_CA_LIFETIME = datetime.timedelta(days=10 * 365)
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True)
class SpiffeID:
    trust_domain: str
    role: str
    workload: str = ""

    def __str__(self) -> str:
        tail = f"/{self.workload}" if self.workload else ""
        return f"spiffe://{self.trust_domain}/role/{self.role}{tail}"


def _segment(value: str, what: str) -> str:
    if not _SEGMENT.fullmatch(value) or value in (".", ".."):
        raise BadParameter(f"invalid {what} {value[:64]!r} in a SPIFFE ID")
    return value


def validate_trust_domain(name: str) -> str:
    if not _TRUST_DOMAIN.fullmatch(name) or name.startswith((".", "-")):
        raise BadParameter(
            f"invalid SPIFFE trust domain {name[:64]!r}",
            hint="lower-case letters, digits, '.', '-' and '_'",
        )
    return name


def make_spiffe_id(trust_domain: str, role: str, workload: str = "") -> SpiffeID:
    found = SpiffeID(
        validate_trust_domain(trust_domain),
        _segment(role, "role"),
        _segment(workload, "workload") if workload else "",
    )
    if len(str(found).encode()) > MAX_ID_BYTES:
        raise BadParameter(f"a SPIFFE ID is at most {MAX_ID_BYTES} bytes")
    return found


def parse_spiffe_id(uri: str) -> SpiffeID:
    """The one grammar, exactly; anything else is refused (not normalised)."""
    if len(uri.encode()) > MAX_ID_BYTES or not uri.startswith("spiffe://"):
        raise BadParameter("the SVID's URI SAN is not a SPIFFE ID of at most 255 bytes")
    trust_domain, _, path = uri.removeprefix("spiffe://").partition("/")
    parts = path.split("/")
    if len(parts) not in (2, 3) or parts[0] != "role":
        raise BadParameter(
            f"the SPIFFE ID {uri[:120]!r} names no role",
            hint="Mezite's SPIFFE IDs read spiffe://TRUST-DOMAIN/role/ROLE[/WORKLOAD]",
        )
    return make_spiffe_id(trust_domain, parts[1], parts[2] if len(parts) == 3 else "")


# --- the CA and what it signs --------------------------------------------------------


def _utc(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC)


def new_spiffe_ca(cluster_name: str, trust_domain: str, now: float) -> X509Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{trust_domain} SPIFFE CA"),
        ]
    )
    start = _utc(now) - datetime.timedelta(minutes=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + SPIFFE_CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return X509Authority(private_key=key, cert=cert, kind="spiffe_x509")


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )  # fmt: skip


SVIDKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def issue_svid(
    ca: X509Authority, public_key: SVIDKey, spiffe_id: SpiffeID, *, now: float, ttl: float
) -> x509.Certificate:
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    start = _utc(now) - datetime.timedelta(minutes=1)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(_utc(now + ttl))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(spiffe_id))]),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca.private_key, hashes.SHA256())
    )


def load_svid_key(pem: str) -> SVIDKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        raise BadParameter("the SVID's public key is not a PEM public key") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key
    raise BadParameter("an SVID key is ECDSA P-256 or P-384, Ed25519, or RSA of 2048 bits or more")


def bundle_jwks(trust_domain: str, certs: Sequence[x509.Certificate], sequence: int) -> str:
    """The SPIFFE bundle format: a JWKS whose keys carry the X.509 authorities (x5c)."""
    keys = []
    for cert in certs:
        der = cert.public_bytes(serialization.Encoding.DER)
        public = cert.public_key()
        jwk: dict[str, object] = {"use": "x509-svid", "x5c": [base64.b64encode(der).decode()]}
        if isinstance(public, ec.EllipticCurvePublicKey):
            numbers = public.public_numbers()
            size = (public.curve.key_size + 7) // 8
            jwk.update(kty="EC", crv={"secp256r1": "P-256", "secp384r1": "P-384"}.get(
                public.curve.name, public.curve.name),
                x=_b64url(numbers.x.to_bytes(size, "big")),
                y=_b64url(numbers.y.to_bytes(size, "big")))  # fmt: skip
        keys.append(jwk)
    return json.dumps({"keys": keys, "spiffe_sequence": sequence, "spiffe_refresh_hint": 3600})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_bundle(text: str) -> list[x509.Certificate]:
    """A trust bundle as PEM certificates or as a SPIFFE JWKS bundle; only CA certificates."""
    if len(text) > MAX_CHAIN_PEM * 4:
        raise BadParameter("the bundle is too large")
    try:
        if text.lstrip().startswith("{"):
            doc = json.loads(text)
            certs = [
                x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
                for key in doc["keys"]
                if key.get("use") == "x509-svid"
            ]
        else:
            certs = x509.load_pem_x509_certificates(text.encode())
    except (ValueError, KeyError, TypeError, IndexError):
        raise BadParameter("the bundle is neither PEM certificates nor a SPIFFE JWKS") from None
    if not certs:
        raise BadParameter("the bundle holds no X.509 authority")
    for cert in certs:
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise BadParameter("every certificate in a bundle must be a CA")
    return certs


# --- verification ----------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedSVID:
    spiffe_id: SpiffeID
    leaf: x509.Certificate

    @property
    def not_after(self) -> float:
        return self.leaf.not_valid_after_utc.timestamp()


Bundles = Callable[[str], Sequence[x509.Certificate] | None]


def svid_trust_domain(chain_pem: str) -> tuple[list[x509.Certificate], SpiffeID]:
    """The chain, bounded, and the ID its leaf names (its single spiffe URI SAN)."""
    if len(chain_pem) > MAX_CHAIN_PEM:
        raise BadParameter(f"the SVID chain is larger than {MAX_CHAIN_PEM // 1024} KiB")
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        raise BadParameter("the SVID chain is not PEM certificates") from None
    if not 1 <= len(chain) <= MAX_CHAIN_CERTS:
        raise BadParameter(f"an SVID chain has 1 to {MAX_CHAIN_CERTS} certificates")
    leaf = chain[0]
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise NotAuthenticated("the SVID has no URI SAN") from None
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise NotAuthenticated(f"an SVID has exactly one URI SAN; this one has {len(uris)}")
    return chain, parse_spiffe_id(uris[0])


def _check_leaf(leaf: x509.Certificate) -> None:
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise NotAuthenticated("the SVID is a CA certificate, not a leaf")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise NotAuthenticated("the SVID has no KeyUsage") from None
    if not usage.digital_signature or usage.key_cert_sign or usage.crl_sign:
        raise NotAuthenticated("the SVID's KeyUsage is not a leaf's (digitalSignature only)")


def verify_svid(chain_pem: str, bundles: Bundles, now: float) -> VerifiedSVID:
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    chain, spiffe_id = svid_trust_domain(chain_pem)
    roots = bundles(spiffe_id.trust_domain)
    if not roots:
        raise NotAuthenticated(f"the trust domain {spiffe_id.trust_domain!r} is not trusted")
    _check_leaf(chain[0])
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(_utc(now))
        .max_chain_depth(MAX_CHAIN_CERTS)
        .extension_policies(ee_policy=ee, ca_policy=ExtensionPolicy.webpki_defaults_ca())
        .build_client_verifier()
    )
    try:
        verifier.verify(chain[0], chain[1:])
    except VerificationError as err:
        reason = str(err).split("\n")[0][:200]
        raise NotAuthenticated(
            f"the SVID does not chain to {spiffe_id.trust_domain}'s bundle: {reason}"
        ) from None
    return VerifiedSVID(spiffe_id=spiffe_id, leaf=chain[0])


def verify_proof(
    leaf: x509.Certificate, signature: bytes, cluster_name: str, ssh_public_key: str,
    proof_time: float, now: float,
) -> None:  # fmt: skip
    if proof_time != int(proof_time) or abs(now - proof_time) > PROOF_SKEW:
        raise NotAuthenticated(
            "the proof of possession is stale or from the future (more than 5 minutes "
            "from auth's clock)",
            hint="check this machine's clock",
        )
    message = proof_message(cluster_name, ssh_public_key, int(proof_time))
    key = leaf.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            digest = hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
            key.verify(signature, message, ec.ECDSA(digest))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            key.verify(signature, message, pss, hashes.SHA256())
        else:
            raise NotAuthenticated("the SVID's key type cannot make a proof")
    except InvalidSignature:
        raise NotAuthenticated(
            "the proof of possession does not verify with the SVID's key"
        ) from None
