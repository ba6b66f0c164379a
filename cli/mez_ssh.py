"""`mez ssh`: the command a user waits on before every session, and that rsync, git and
Ansible run once per connection. Its arguments are OpenSSH's (cli/sshargs.py reads them),
so it needs no command-line framework, and cli/mez.py runs it without one: the time
between `mez ssh` and OpenSSH's own ssh is Python's start-up, this module's imports and
reading the profile. Through a proxy a node name needs no RPC either (the proxy resolves
it; see cli.mez_client.resolve_targets)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def framework_args(argv: Sequence[str]) -> list[str]:
    """The arguments the typer command receives for ``mez ssh ARGV``: click drops the
    first ``--`` when only options come before it (and keeps it after the first word
    that is not an option), so both ways in give cli.sshargs the same list."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--":
            return args[:i] + args[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            break
    return args


def ssh(args: Sequence[str]) -> int:
    """Exec OpenSSH's ssh for one node; for a selector, the worst exit code of all."""
    from cli import mez_client
    from cli.sshargs import parse
    from proto.profile import load_profile

    call = parse(args)
    if "-v" in call.flags:
        for note in call.notes:
            print(f"mez ssh: {note}", file=sys.stderr)
    profile = load_profile()
    mez_client.ensure_certs(profile)
    at_login, host = mez_client.split_login(call.target, "")
    login_name = call.login or at_login or mez_client.default_login(profile)
    nodes = mez_client.resolve_targets(profile, host)
    if len(nodes) == 1 and mez_client.parse_selector(host) is None:
        argv = mez_client.ssh_argv(profile, nodes[0], login_name, call.flags, call.command)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)  # noqa: S606 - OpenSSH's ssh, with our pinned options
    from cli.fanout import run_everywhere

    return run_everywhere(profile, nodes, login_name, call.flags, call.command)
