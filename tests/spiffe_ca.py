"""A test SPIFFE CA outside Mezite (as a SPIRE server would be): SVIDs for any ID, with
every way an SVID can be wrong available as a flag, and the proof a client signs."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proto.spiffe import sign_proof
from proto.v1 import auth_pb2 as pb


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class SpireCA:
    trust_domain: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIRE test")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{self.trust_domain}")]), critical=False)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip

    @property
    def bundle_pem(self) -> str:
        return _pem(self.cert)

    def svid(
        self, *uris: str, ca: bool = False, expired: bool = False
    ) -> tuple[str, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        return self.certify(key.public_key(), *uris, ca=ca, expired=expired), key

    def certify(
        self, public_key: ec.EllipticCurvePublicKey, *uris: str, ca: bool = False,
        expired: bool = False, seconds: float = 3600,
    ) -> str:  # fmt: skip
        """An SVID (PEM) for someone else's key, valid for ``seconds`` from now."""
        now = datetime.datetime.now(datetime.UTC)
        start, end = (
            (now - datetime.timedelta(hours=2), now - datetime.timedelta(hours=1))
            if (expired)
            else (now - datetime.timedelta(minutes=1), now + datetime.timedelta(seconds=seconds))
        )
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        usage = x509.KeyUsage(not ca, False, False, False, False, ca, ca, False, False)
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.cert.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(u) for u in uris]), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        return _pem(cert)


def spiffe_request(
    chain_pem: str, key: object, ssh_public_key: str, cluster: str, *, at: float | None = None
) -> pb.AuthenticateSPIFFERequest:
    signature, proof_time = sign_proof(
        key, cluster, ssh_public_key, time.time() if at is None else at
    )
    return pb.AuthenticateSPIFFERequest(
        svid_chain_pem=chain_pem, proof_signature=signature, proof_time=proof_time,
        ssh_public_key=ssh_public_key,
    )  # fmt: skip
