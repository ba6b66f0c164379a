"""`mez config`: an OpenSSH config block for the logged-in cluster, and the ProxyCommand
helper it uses to reach a node by name."""

from __future__ import annotations

import os
import selectors
import shlex
import socket
from pathlib import Path

from proto.addr import HostPort
from proto.errors import ConnectionProblem
from proto.profile import Profile
from proto.sshconfig import host_block, render


def config_block(profile: Profile, mez: Path) -> str:
    """Hosts are reached as NODE.CLUSTER (a principal of every node's host certificate),
    through the proxy when the profile has one, as the login `mez ssh` would use."""
    from cli.mez_client import default_login, identity, proxy_alias, proxy_block

    header = [f"Mezite cluster {profile.cluster}: `ssh NODE.{profile.cluster}`"]
    login = ("User", default_login(profile))
    if profile.proxy_addr:
        alias = proxy_alias(profile)
        nodes = host_block([f"*.{profile.cluster}", f"!{alias}"], identity(profile), login,
                           ("ProxyJump", alias))  # fmt: skip
        return render(header, [proxy_block(profile), nodes])
    proxy_command = ("ProxyCommand", f"{shlex.quote(str(mez))} proxy-connect %h %p")
    return render(header, [host_block([f"*.{profile.cluster}"], identity(profile), login,
                                      proxy_command)])  # fmt: skip


def pipe_stdio(addr: str) -> None:
    """Shuttle bytes between stdin/stdout and ``addr`` until either side closes."""
    target = HostPort.parse(addr)
    try:
        sock = socket.create_connection((target.host, target.port), timeout=10)
    except OSError as exc:
        raise ConnectionProblem(f"cannot reach {addr}: {exc}") from exc
    sock.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "stdin")
    sel.register(sock, selectors.EVENT_READ, "sock")
    with sock:
        while True:
            for key, _ in sel.select():
                if key.data == "stdin":
                    data = os.read(0, 65536)
                    if not data:
                        sock.shutdown(socket.SHUT_WR)
                        sel.unregister(0)
                        continue
                    sock.sendall(data)
                else:
                    data = sock.recv(65536)
                    if not data:
                        return
                    os.write(1, data)
