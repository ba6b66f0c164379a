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


def config_block(profile: Profile, mez: Path) -> str:
    """Hosts are reached as NODE.CLUSTER (a principal of every node's host certificate),
    through the proxy when the profile has one."""
    if profile.proxy_addr:
        from cli.mez_client import _identity_lines, default_login

        proxy = HostPort.parse(profile.proxy_addr)
        return "\n".join(
            [
                f"# Mezite cluster {profile.cluster}: `ssh LOGIN@NODE.{profile.cluster}`",
                f"Host mezite-proxy.{profile.cluster}",
                f"    HostName {proxy.host}",
                f"    Port {proxy.port}",
                f"    User {default_login(profile)}",
                "    HostKeyAlias proxy",
                *_identity_lines(profile),
                f"Host *.{profile.cluster} !mezite-proxy.{profile.cluster}",
                f"    User {profile.user}",
                *_identity_lines(profile),
                f"    ProxyJump mezite-proxy.{profile.cluster}",
                "",
            ]
        )
    return "\n".join(
        [
            f"# Mezite cluster {profile.cluster}: `ssh LOGIN@NODE.{profile.cluster}`",
            f"Host *.{profile.cluster}",
            f"    User {profile.user}",
            f"    IdentityFile {profile.key_path}",
            f"    CertificateFile {profile.cert_path}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {profile.known_hosts_path}",
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking yes",
            f"    ProxyCommand {shlex.quote(str(mez))} proxy-connect %h %p",
            "",
        ]
    )


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
