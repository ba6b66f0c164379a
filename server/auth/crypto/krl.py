"""OpenSSH key revocation lists (KRL), the binary format of OpenSSH's PROTOCOL.krl that
sshd's ``RevokedKeys`` and ``ssh-keygen -Q`` read.

Only what Mezite needs is written: one certificates section for the user CA, revoking by
serial (a list) and by key id. Serials are unique across the cluster (auth reserves them
in the backend), so the serial list alone is exact; key ids are added because they say
the same in a form an operator can read with ``ssh-keygen -Q -l``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

KRL_MAGIC = 0x5353484B524C0A00
KRL_FORMAT_VERSION = 1
KRL_SECTION_CERTIFICATES = 1
KRL_SECTION_CERT_SERIAL_LIST = 0x20
KRL_SECTION_CERT_KEY_ID = 0x23


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _section(kind: int, data: bytes) -> bytes:
    return bytes([kind]) + _string(data)


def encode_krl(
    ca_key_blob: bytes,
    serials: Iterable[int],
    key_ids: Iterable[str] = (),
    *,
    version: int,
    generated: int,
    comment: str = "",
) -> bytes:
    """A KRL revoking, for certificates signed by the CA whose SSH wire-format public key
    is ``ca_key_blob``, every serial in ``serials`` and every key id in ``key_ids``."""
    header = struct.pack(">QIQQQ", KRL_MAGIC, KRL_FORMAT_VERSION, version, generated, 0)
    header += _string(b"") + _string(comment.encode())
    ordered = sorted({s for s in serials if s > 0})
    ids = sorted(set(key_ids))
    inner = _string(ca_key_blob) + _string(b"")
    if ordered:
        inner += _section(
            KRL_SECTION_CERT_SERIAL_LIST, b"".join(struct.pack(">Q", s) for s in ordered)
        )
    if ids:
        inner += _section(KRL_SECTION_CERT_KEY_ID, b"".join(_string(i.encode()) for i in ids))
    if not ordered and not ids:
        return header
    return header + _section(KRL_SECTION_CERTIFICATES, inner)
