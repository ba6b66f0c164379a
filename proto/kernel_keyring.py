"""The session in the Linux kernel's key retention service, for headless machines.

``mez login --keyring kernel`` keeps the session ID as a ``user`` key named
``mezite:<cluster>/<user>`` in the caller's user keyring (``@u``), through libkeyutils
(Debian ``libkeyutils1``; ``keyctl`` from ``keyutils`` reads the same key). What that means:

- The secret is in kernel memory only: never in a file, never swapped out, gone at reboot.
- The user keyring lives while any process of the uid runs (see user-keyring(7)): every
  shell, ssh login and cron job of the same uid shares it, and it goes when the last one
  ends (unless something such as ``loginctl enable-linger`` keeps a process alive).
- Who can read it: processes of the same uid, and root. Not other users or groups: the
  key's permissions give nothing to anyone but its possessor and its own uid.
- Keyrings are per user namespace, not per container: containers that share a uid and no
  user namespace share the user keyring.

It has the same three calls as a ``keyring`` backend, so proto/profile.py treats both alike.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache

KEY_SPEC_USER_KEYRING = -4
KEY_TYPE = b"user"
# Possessor and the same uid (also from a session keyring that does not link @u): every
# permission; group and others: none.
OWNER_ONLY = 0x3F3F0000
_ENOKEY, _EKEYEXPIRED, _EKEYREVOKED = 126, 127, 128
NAME = "kernel user keyring (keyutils)"


class KernelKeyringError(Exception):
    """The kernel (or libkeyutils) refused; the message says what and why."""


@cache
def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libkeyutils.so.1", use_errno=True)
    except OSError as exc:
        raise KernelKeyringError(
            "libkeyutils.so.1 is missing (Debian: apt-get install keyutils)"
        ) from exc
    lib.add_key.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                            ctypes.c_size_t, ctypes.c_int32]  # fmt: skip
    lib.add_key.restype = ctypes.c_int32
    lib.keyctl_search.argtypes = [ctypes.c_int32, ctypes.c_char_p, ctypes.c_char_p,
                                  ctypes.c_int32]  # fmt: skip
    lib.keyctl_search.restype = ctypes.c_long
    lib.keyctl_read.argtypes = [ctypes.c_int32, ctypes.c_char_p, ctypes.c_size_t]
    lib.keyctl_read.restype = ctypes.c_long
    lib.keyctl_setperm.argtypes = [ctypes.c_int32, ctypes.c_uint32]
    lib.keyctl_setperm.restype = ctypes.c_long
    lib.keyctl_invalidate.argtypes = [ctypes.c_int32]
    lib.keyctl_invalidate.restype = ctypes.c_long
    lib.keyctl_get_keyring_ID.argtypes = [ctypes.c_int32, ctypes.c_int]
    lib.keyctl_get_keyring_ID.restype = ctypes.c_int32
    return lib


def check_available() -> None:
    """Raise KernelKeyringError unless this process can reach its user keyring (a kernel
    without CONFIG_KEYS, or a seccomp filter that forbids the calls, cannot)."""
    if not sys.platform.startswith("linux"):
        raise KernelKeyringError(f"the kernel keyring is Linux's, and this is {sys.platform}")
    if _lib().keyctl_get_keyring_ID(KEY_SPEC_USER_KEYRING, 1) < 0:
        raise _failed("cannot reach the kernel user keyring")


def _failed(what: str) -> KernelKeyringError:
    err = ctypes.get_errno()
    return KernelKeyringError(f"{what}: {os.strerror(err)}")


def description(service: str, username: str) -> str:
    return f"{service}:{username}"


class KernelKeyring:
    """The user keyring of the calling uid, with the calls of a ``keyring`` backend."""

    name = NAME

    def _find(self, service: str, username: str) -> int | None:
        serial = _lib().keyctl_search(
            KEY_SPEC_USER_KEYRING, KEY_TYPE, description(service, username).encode(), 0
        )
        if serial < 0:
            if ctypes.get_errno() in (_ENOKEY, _EKEYEXPIRED, _EKEYREVOKED):
                return None
            raise _failed("cannot search the kernel user keyring")
        return int(serial)

    def set_password(self, service: str, username: str, password: str) -> None:
        secret = password.encode()
        lib = _lib()
        # add_key replaces the payload of a key with the same type and description.
        serial = lib.add_key(KEY_TYPE, description(service, username).encode(), secret,
                             len(secret), KEY_SPEC_USER_KEYRING)  # fmt: skip
        if serial < 0:
            raise _failed("the kernel user keyring refused the key")
        if lib.keyctl_setperm(serial, OWNER_ONLY) < 0:
            failed = _failed("cannot restrict the key's permissions")
            lib.keyctl_invalidate(serial)
            raise failed

    def get_password(self, service: str, username: str) -> str | None:
        serial = self._find(service, username)
        if serial is None:
            return None
        buffer = ctypes.create_string_buffer(4096)
        size = _lib().keyctl_read(serial, buffer, len(buffer))
        if size < 0:
            if ctypes.get_errno() in (_ENOKEY, _EKEYEXPIRED, _EKEYREVOKED):
                return None
            raise _failed("cannot read the key from the kernel user keyring")
        if size > len(buffer):
            raise KernelKeyringError(f"the kernel key holds {size} bytes, not a session ID")
        return buffer.raw[:size].decode()

    def delete_password(self, service: str, username: str) -> None:
        serial = self._find(service, username)
        if serial is not None and _lib().keyctl_invalidate(serial) < 0:
            raise _failed("cannot remove the key from the kernel user keyring")
