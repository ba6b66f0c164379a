"""What every TLS listener of the server side shares: the key-exchange groups it accepts,
and how a running listener takes a renewed certificate.

Groups: X25519 and P-256 only (Mozilla's modern and intermediate profiles), with the
hybrid X25519MLKEM768 first when the linked OpenSSL knows it (3.5 and later). OpenSSL's
default list also accepts X448 and the P-384/P-521 curves. Python's ``ssl`` gained a way
to set the list only in recent versions (``SSLContext.set_groups``); before that the one
knob, ``set_ecdh_curve``, takes a single EC curve and cannot name X25519, so the list is
set on the context's ``SSL_CTX`` through the OpenSSL that ``_ssl`` itself links.
"""

from __future__ import annotations

import ctypes
import ssl
import sys
from pathlib import Path
from typing import Any

CLASSICAL_GROUPS = ("X25519", "P-256")
HYBRID_GROUP = "X25519MLKEM768"

_SSL_CTRL_SET_GROUPS_LIST = 92  # SSL_CTX_set1_groups_list is this SSL_CTX_ctrl call
_libssl: Any = None


def _openssl() -> Any:
    """The libssl that ``_ssl`` is linked to (dlsym on a handle searches its dependencies),
    so the ``SSL_CTX`` and the functions come from one library."""
    global _libssl  # a cached handle to a loaded library, not configuration
    if _libssl is None:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)
        lib.SSL_CTX_ctrl.restype = ctypes.c_long
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        _libssl = lib
    return _libssl


def _ssl_ctx(ctx: ssl.SSLContext) -> int:
    """The ``SSL_CTX *`` of a CPython SSLContext: its first field after the object header.
    Checked before use: the options OpenSSL reports for it must be the context's."""
    if sys.implementation.name != "cpython":
        raise RuntimeError("restricting TLS groups needs CPython's ssl module")
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer or _openssl().SSL_CTX_get_options(pointer) != int(ctx.options):
        raise RuntimeError("cannot reach the OpenSSL context behind ssl.SSLContext")
    return pointer


def _set_groups_list(ctx: ssl.SSLContext, groups: str) -> bool:
    setter = getattr(ctx, "set_groups", None)  # Python versions that have it
    if setter is not None:
        try:
            setter(groups)
        except ssl.SSLError:
            return False
        return True
    done: int = _openssl().SSL_CTX_ctrl(
        _ssl_ctx(ctx), _SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode()
    )
    return done == 1


def restrict_groups(ctx: ssl.SSLContext) -> tuple[str, ...]:
    """Accept only the groups above on ``ctx``; returns the list in force."""
    for groups in ((HYBRID_GROUP, *CLASSICAL_GROUPS), CLASSICAL_GROUPS):
        if _set_groups_list(ctx, ":".join(groups)):
            return groups
    raise RuntimeError(f"the linked {ssl.OPENSSL_VERSION} refuses the groups {CLASSICAL_GROUPS}")


def reload_cert_chain(ctx: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    """Serve a new certificate from the next handshake on (a context takes a new chain
    in place; connections already open keep theirs).

    The pair is tried on a scratch context first: a live context whose load failed half
    way would hold the new certificate with the old key and fail every handshake. Raises
    ``OSError`` or ``ssl.SSLError`` and keeps serving the old pair when the new one does
    not load."""
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file)
    ctx.load_cert_chain(cert_file, key_file)
