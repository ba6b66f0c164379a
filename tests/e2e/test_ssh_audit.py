"""ssh-audit against both of Mezite's SSH ports, a real `mezd start` (3022) and the SSH
hop of a real `mezctl start` (3023), beside a stock OpenSSH sshd on the same machine:
no [fail] on a Mezite port that the stock sshd does not get too, and one policy on both
(docs/ssh-policy.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.e2e.procs import free_port, join_node, mezctl_start, mezd_start
from tests.integration.sshd_fixtures import public_line
from tests.ssh_audit import ssh_audit
from tests.stock_sshd import HAVE_SSHD, stock_sshd

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_SSHD, reason="OpenSSH server not installed"),
]


def test_ssh_audit_fails_nothing_on_either_port_that_a_stock_sshd_passes(tmp_path: Path) -> None:
    some_ca = public_line(ed25519.Ed25519PrivateKey.generate())  # ssh-audit never logs in
    with stock_sshd(tmp_path / "sshd", some_ca) as port:
        stock = ssh_audit("127.0.0.1", port)
    with mezctl_start(tmp_path / "data") as auth:
        node_port = free_port()
        join_node(auth, tmp_path / "node", "audited", node_port)
        with mezd_start(tmp_path / "node", node_port):
            mezd = ssh_audit("127.0.0.1", node_port)
        host, proxy_port = auth.proxy_ssh_addr.rsplit(":", 1)
        proxy = ssh_audit(host, int(proxy_port))
    assert "(gen) banner: SSH-2.0-OpenSSH" in stock.text
    assert "(gen) banner: SSH-2.0-Mezite\n" in mezd.text, mezd.text
    assert "(gen) banner: SSH-2.0-MeziteProxy\n" in proxy.text, proxy.text
    # The reader finds what ssh-audit fails on a stock sshd (its SHA-1 MACs at least).
    assert any("hmac-sha1" in fail for fail in stock.fails), stock.text
    assert mezd.fails <= stock.fails, mezd.text
    assert proxy.fails <= stock.fails, proxy.text
    # One policy: both ports offer the very same algorithms, post-quantum included.
    assert mezd.offered == proxy.offered
    assert "(kex) mlkem768x25519-sha256" in mezd.offered
    assert not [alg for alg in mezd.offered if "sha1" in alg or "-cbc" in alg], mezd.offered
    assert "(gen) compression: disabled" in mezd.text
    assert "(gen) compression: disabled" in proxy.text
