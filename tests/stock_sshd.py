"""A stock OpenSSH sshd on 127.0.0.1, as a reference peer: for Mezite certificates
(agentless nodes) and for what an auditor finds on a distribution's own sshd."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
HAVE_SSHD = os.path.exists(SSHD)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def stock_sshd(directory: Path, user_ca: str, revoked_keys: Path | None = None) -> Iterator[int]:
    """sshd on 127.0.0.1 with its stock algorithm lists, trusting ``user_ca``, and
    checking ``revoked_keys`` (which sshd reads at every authentication) when given."""
    directory.mkdir()
    (directory / "user_ca.pub").write_text(user_ca)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(directory / "host_key")], check=True)  # fmt: skip
    port = free_port()
    config = (
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
        f"PidFile {directory / 'sshd.pid'}\nTrustedUserCAKeys {directory / 'user_ca.pub'}\n"
        "AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
    )
    if revoked_keys is not None:
        config += f"RevokedKeys {revoked_keys}\n"
    (directory / "sshd_config").write_text(config)
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(directory / "sshd_config")],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and sshd.poll() is None, "sshd did not start"
            time.sleep(0.05)
        yield port
    finally:
        sshd.terminate()
        sshd.wait(10)
        assert sshd.stderr is not None
        sshd.stderr.close()
