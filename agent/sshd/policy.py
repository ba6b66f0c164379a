"""The node's certificate policy lives in proto.sshpolicy, shared with the proxy's SSH
hop; this module keeps the node's import path."""

from proto.sshpolicy import (
    ACCEPTED_CERT_TYPES,
    CERT_SUFFIX,
    MAX_KEY_BLOB,
    MIN_RSA_BITS,
    AuthRefused,
    CertIdentity,
    TrustedUserCAs,
    ca_key_blob,
    check_user_certificate,
    parse_certificate,
)

__all__ = [
    "ACCEPTED_CERT_TYPES",
    "CERT_SUFFIX",
    "MAX_KEY_BLOB",
    "MIN_RSA_BITS",
    "AuthRefused",
    "CertIdentity",
    "TrustedUserCAs",
    "ca_key_blob",
    "check_user_certificate",
    "parse_certificate",
]
