"""`mez ssh`'s command line, read the way OpenSSH's ssh reads its own, so that programs
that run "an ssh" (rsync -e, GIT_SSH_COMMAND, Ansible's ssh_executable, scp -S, sftp -S)
can run `mez ssh`.

Options come before the destination (``-lLOGIN`` and ``-l LOGIN``, bundled flags like
``-tt`` or ``-46C``, ``--`` ends them); the destination is ``[LOGIN@]NODE``, a node id or a
``k=v`` selector. As in ssh, options may follow the destination too (``ssh host -l root
cmd``) until the first word that is not one, or a ``--``; the rest is the remote command.
What each option means for mez:

- passed to OpenSSH's ssh as given: the flags in ``FLAGS`` and the options in
  ``WITH_VALUE`` (``-v``, ``-q``, ``-4/-6``, ``-t/-T``, ``-C``, ``-L/-R/-D``, ``-E``, ...),
  and every ``-o`` keyword not named below;
- mapped: ``-l`` and ``-o User`` give the login (the first one given wins, as in ssh,
  and beats ``LOGIN@``);
- ignored, because mez already decides them more strictly: ``-p``/``-o Port`` (a node is
  reached on the port it registered), ``-i`` and the identity keywords (the Mezite
  certificate is the identity), the host-key keywords (node host keys are checked
  against the cluster's host CA, strictly). ``-v`` says so on stderr;
- refused with one line: ``-F``, ``-J``, ``-w``, ``-Q`` and the routing keywords (mez
  decides where a connection goes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from proto.errors import BadParameter

FLAGS = frozenset("46AaCfGgKkMNnqsTtVvXxYy")
WITH_VALUE = frozenset("BbcDEeLmOPRSW")
IGNORED_WITH_VALUE = {
    "p": "a node is reached on the port it registered",
    "i": "the Mezite certificate is the identity",
    "I": "the Mezite certificate is the identity",
}
REFUSED = {
    "F": "mez ssh writes its own OpenSSH config; for your own, use `mez config`",
    "J": "mez ssh routes through the cluster's proxy itself",
    "w": "tunnel devices are not supported",
    "Q": "ask OpenSSH's `ssh -Q` directly",
}
_NEEDS_VALUE = WITH_VALUE | set(IGNORED_WITH_VALUE) | set("FJwQlo")

_HOST_KEYS = "node host keys are checked against the cluster's host CA"
_IDENTITY = "the Mezite certificate is the identity"
IGNORED_KEYWORDS = {
    "port": "a node is reached on the port it registered",
    **dict.fromkeys(
        ("identityfile", "certificatefile", "identitiesonly", "pkcs11provider",
         "securitykeyprovider"),
        _IDENTITY,
    ),
    **dict.fromkeys(
        ("stricthostkeychecking", "userknownhostsfile", "globalknownhostsfile",
         "hostkeyalias", "checkhostip", "updatehostkeys", "verifyhostkeydns",
         "knownhostscommand", "hashknownhosts", "nohostauthenticationforlocalhost"),
        _HOST_KEYS,
    ),
}  # fmt: skip
REFUSED_KEYWORDS = {
    "hostname": "mez finds nodes by name",
    "proxyjump": "mez ssh routes through the cluster's proxy itself",
    "proxycommand": "mez ssh routes through the cluster's proxy itself",
    "proxyusefdpass": "mez ssh routes through the cluster's proxy itself",
    "tunnel": "tunnel devices are not supported",
    "tunneldevice": "tunnel devices are not supported",
}


@dataclass(frozen=True)
class SSHCall:
    target: str
    login: str = ""  # from -l or -o User; "" when neither was given
    flags: tuple[str, ...] = ()  # for OpenSSH's ssh, before the destination
    command: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())  # what was ignored and why, for -v


def _keyword(option: str) -> tuple[str, str]:
    """``Key=Value``, ``Key Value`` or ``Key = Value``, as ssh reads a -o argument."""
    text = option.strip()
    end = next((i for i, c in enumerate(text) if c == "=" or c.isspace()), len(text))
    key, rest = text[:end], text[end:].lstrip()
    if rest.startswith("="):
        rest = rest[1:].lstrip()
    if not key or not rest:
        raise BadParameter(f"mez ssh: -o {option!r}: give Option=Value")
    return key, rest


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


class _Reader:
    def __init__(self) -> None:
        self.login = ""
        self.flags: list[str] = []
        self.notes: list[str] = []

    def option(self, letter: str, value: str | None) -> None:
        if letter in REFUSED:
            raise BadParameter(f"mez ssh: -{letter} is not supported: {REFUSED[letter]}")
        if letter in FLAGS:
            self.flags.append(f"-{letter}")
        elif value is None:
            raise BadParameter(f"mez ssh: -{letter} needs a value")
        elif letter == "l":
            self.login = self.login or value
        elif letter == "o":
            self._config_option(value)
        elif letter in IGNORED_WITH_VALUE:
            if letter == "p" and not (value.isdigit() and 0 < int(value) < 65536):
                raise BadParameter(f"mez ssh: bad port {value!r}")
            self.notes.append(f"ignoring -{letter} {value}: {IGNORED_WITH_VALUE[letter]}")
        else:
            self.flags += [f"-{letter}", value]

    def _config_option(self, option: str) -> None:
        key, value = _keyword(option)
        name = key.lower()
        if name in REFUSED_KEYWORDS:
            raise BadParameter(f"mez ssh: -o {key} is not supported: {REFUSED_KEYWORDS[name]}")
        if name == "user":
            self.login = self.login or _unquoted(value)
        elif name in IGNORED_KEYWORDS:
            self.notes.append(f"ignoring -o {key}: {IGNORED_KEYWORDS[name]}")
        else:
            self.flags += ["-o", option]


def _read_options(args: Sequence[str], i: int, reader: _Reader) -> int:
    """Read options from ``args[i]`` on, up to the first that is not one (or just past
    ``--``); returns where they ended."""
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            raise BadParameter(f"mez ssh: unknown option {arg}", hint="see `mez ssh --help`")
        j = 1
        while j < len(arg):
            letter = arg[j]
            j += 1
            if letter not in FLAGS and letter not in _NEEDS_VALUE:
                raise BadParameter(f"mez ssh: unknown option -{letter}",
                                   hint="see `mez ssh --help`")  # fmt: skip
            if letter in FLAGS:
                reader.option(letter, None)
                continue
            value = arg[j:] if j < len(arg) else (args[i] if i < len(args) else None)
            if j >= len(arg) and value is not None:
                i += 1
            reader.option(letter, value)
            break
    return i


def parse(args: Sequence[str]) -> SSHCall:
    """``args`` (what follows `mez ssh`) as OpenSSH's getopt would read them: options,
    the destination, then options again (ssh restarts getopt after the host) up to the
    first word that is not one or a ``--``; the rest is the remote command."""
    reader = _Reader()
    i = _read_options(args, 0, reader)
    if i >= len(args):
        raise BadParameter("mez ssh: give a destination: [LOGIN@]NODE [COMMAND...]")
    target = args[i]
    i = _read_options(args, i + 1, reader)
    return SSHCall(target, reader.login, tuple(reader.flags), tuple(args[i:]), tuple(reader.notes))
