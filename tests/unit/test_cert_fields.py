"""proto.certfields reads expiry and principals from the wire format: it must agree with
cryptography's parser on every certificate, and hand anything else to it."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    SSHCertificateBuilder,
    SSHCertificateType,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from proto.certfields import _fast, _with_cryptography, cert_fields

CA = ed25519.Ed25519PrivateKey.generate()
KEYS = {
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "p521": ec.generate_private_key(ec.SECP521R1()),
    "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


def certificate(key: str, principals: list[str], before: int, key_id: bytes = b"id") -> bytes:
    builder = (
        SSHCertificateBuilder()
        .public_key(KEYS[key].public_key())  # type: ignore[arg-type]
        .serial(7)
        .type(SSHCertificateType.USER)
        .key_id(key_id)
        .valid_after(0)
        .valid_before(before)
        .add_extension(b"mezite-user@mezite", b"alice")
    )
    builder = (
        builder.valid_principals([p.encode() for p in principals])
        if principals
        else builder.valid_for_all_principals()
    )
    return builder.sign(CA).public_bytes()


@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from(sorted(KEYS)),
    principals=st.lists(NAMES, max_size=5, unique=True),
    before=st.integers(1, 2**64 - 1),
    key_id=st.binary(max_size=64),
)
def test_the_wire_reader_agrees_with_cryptography(
    key: str, principals: list[str], before: int, key_id: bytes
) -> None:
    line = certificate(key, principals, before, key_id)
    assert _fast(line) == _with_cryptography(line)
    assert cert_fields(line).principals == tuple(principals)
    assert cert_fields(line).valid_before == float(before)


def test_a_plain_key_is_no_certificate() -> None:
    line = KEYS["ed25519"].public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    assert cert_fields(line).valid_before == 0.0 and cert_fields(line).principals == ()


@pytest.mark.parametrize(
    "line",
    [b"", b"ssh-ed25519-cert-v01@openssh.com", b"ssh-ed25519-cert-v01@openssh.com !!!",
     b"ssh-ed25519-cert-v01@openssh.com AAAA"],
)  # fmt: skip
def test_what_it_cannot_read_is_cryptographys_to_refuse(line: bytes) -> None:
    with pytest.raises(ValueError):
        cert_fields(line)


def test_a_truncated_certificate_is_cryptographys_to_refuse() -> None:
    kind, blob = certificate("ed25519", ["root"], 10).split()[:2]
    import base64

    cut = base64.b64encode(base64.b64decode(blob)[:60])
    with pytest.raises(ValueError):
        cert_fields(kind + b" " + cut)
