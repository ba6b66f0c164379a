"""CA pins and first-contact trust.

A CA pin is ``sha256:<hex>`` of the host X.509 CA's DER SubjectPublicKeyInfo. Joins and
first logins carry a pin; the CA bundle a server offers is trusted only when the CA in it
hashes to that pin. Nothing here imports grpc, so the CLIs can pin-check cheaply.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from proto.errors import BadParameter, TrustFailure

# Every auth server certificate carries this name and clients verify against it (whatever
# address they dialled), so a certificate the CA issued to anything else never passes as
# the auth server.
AUTH_SERVER_NAME = "auth.mezite.internal"
PROXY_SERVER_NAME = "proxy.mezite.internal"

_PIN_RE = re.compile(r"sha256:[0-9a-f]{64}")


def parse_pin(text: str) -> str:
    """Validate a pin as typed by a user; returns it normalised to lower case."""
    pin = text.strip().lower()
    if not _PIN_RE.fullmatch(pin):
        raise BadParameter(
            f"invalid CA pin {text[:80]!r}",
            hint="a pin looks like sha256:<64 hex digits>; `mezctl status` prints it",
        )
    return pin


def spki_pin(cert_pem: str | bytes) -> str:
    """The pin of a PEM certificate's public key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    cert = x509.load_pem_x509_certificate(data)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def certificate_agent_id(cert_pem: str | bytes) -> str:
    """The agent id an X.509 client certificate names (its subject's common name)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    names = x509.load_pem_x509_certificate(data).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def select_pinned_ca(bundle_pem: str, pin: str) -> str:
    """Return the certificate of ``bundle_pem`` whose key matches ``pin``.

    Raises TrustFailure when none does: the server is not the cluster the pin names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    expected = parse_pin(pin)
    for cert in x509.load_pem_x509_certificates(bundle_pem.encode()):
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        if hmac.compare_digest(spki_pin(pem), expected):
            return pem
    raise TrustFailure(
        "the server's certificate authority does not match the CA pin",
        hint="check the --ca-pin value against `mezctl status` on the auth server; "
        "if it matches, someone may be intercepting the connection",
    )
