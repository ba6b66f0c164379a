"""OpenSSH client configuration for Mezite identities: one renderer for `mez ssh`'s
options, the config `mez` writes for the proxy hop, `mez config`'s block and an agent
identity's ``ssh_config``.

Every host block pins the same things: the Mezite key and certificate only, host keys
checked against the cluster's host CA only (strictly, no global known_hosts), and the
cipher order. Key exchange is left to OpenSSH: its default order already puts the
post-quantum hybrids first, and a pinned list naming an algorithm the local ssh does
not know (mlkem768x25519-sha256 before OpenSSH 9.9) makes ssh refuse to start."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# AES-GCM first: with AES-NI it moves bulk data about twice as fast as chacha20, which
# OpenSSH prefers by default.
CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com"

Option = tuple[str, str]


@dataclass(frozen=True)
class SSHIdentity:
    """Where a Mezite identity's SSH files are."""

    key: Path
    cert: Path
    known_hosts: Path

    def pinned(self) -> list[Option]:
        """What no caller's option may change: who we are and how hosts are checked."""
        return [
            ("IdentityFile", str(self.key)),
            ("CertificateFile", str(self.cert)),
            ("IdentitiesOnly", "yes"),
            ("UserKnownHostsFile", str(self.known_hosts)),
            ("GlobalKnownHostsFile", "/dev/null"),
            ("StrictHostKeyChecking", "yes"),
        ]


DEFAULTS: tuple[Option, ...] = (("Ciphers", CIPHERS),)


@dataclass(frozen=True)
class HostBlock:
    patterns: tuple[str, ...]
    options: tuple[Option, ...]


def host_block(
    patterns: Sequence[str], identity: SSHIdentity | None, *options: Option
) -> HostBlock:
    """``options`` first (OpenSSH keeps the first value it reads), then the identity's
    pinned options and the defaults."""
    pinned = [*identity.pinned(), *DEFAULTS] if identity else []
    return HostBlock(tuple(patterns), (*options, *pinned))


def render(header: Sequence[str], blocks: Sequence[HostBlock]) -> str:
    lines = [f"# {line}" for line in header]
    for block in blocks:
        lines.append(f"Host {' '.join(block.patterns)}")
        lines += [f"    {key} {_quoted(key, value)}" for key, value in block.options]
    return "\n".join([*lines, ""])


def command_line(options: Sequence[Option]) -> list[str]:
    """``options`` as ssh's ``-o Key=Value`` arguments."""
    args: list[str] = []
    for key, value in options:
        args += ["-o", f"{key}={_quoted(key, value)}"]
    return args


# Their value is the rest of the line, handed to a shell as it is.
_WHOLE_LINE = frozenset({"proxycommand", "localcommand", "remotecommand"})


def _quoted(key: str, value: str) -> str:
    # ssh splits a config line (and a -o argument) at whitespace: a path with a space in
    # it is one argument only when quoted.
    if key.lower() in _WHOLE_LINE or not any(c.isspace() for c in value):
        return value
    return f'"{value}"'


def certificate_logins(cert_line: bytes) -> list[str]:
    """The logins (principals) an OpenSSH certificate allows, in its order."""
    from proto.certfields import cert_fields

    return list(cert_fields(cert_line).principals)
