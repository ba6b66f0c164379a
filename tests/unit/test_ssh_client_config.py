"""The OpenSSH client configuration Mezite writes (`mez ssh`'s options, its proxy
config, `mez config`, an agent identity's ssh_config), read back by OpenSSH's own
`ssh -G`: each pins the same identity, host-key checks and ciphers, and logs in as a
login the certificate allows, never as the Mezite user's name."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    SSHCertificateBuilder,
    SSHCertificateType,
)

from agent.bot import BotState
from agent.bot import ssh_config as identity_config
from cli.mez_client import proxy_ssh_config, ssh_argv
from cli.sshconfig import config_block
from proto.profile import Profile
from proto.sshconfig import CIPHERS
from proto.v1 import auth_pb2 as pb

SSH = shutil.which("ssh")
pytestmark = pytest.mark.skipif(SSH is None, reason="OpenSSH client `ssh` not installed")
NODE = pb.Node(id="node-id-1", name="web-1", addr="10.1.2.3:3022")


def _cert(*logins: str) -> str:
    now = int(time.time())
    builder = (
        SSHCertificateBuilder()
        .public_key(ed25519.Ed25519PrivateKey.generate().public_key())
        .type(SSHCertificateType.USER)
        .valid_principals([login.encode() for login in logins])
        .valid_after(now - 60)
        .valid_before(now + 3600)
        .key_id(b"test")
    )
    return builder.sign(ed25519.Ed25519PrivateKey.generate()).public_bytes().decode()


def _effective(*argv: str) -> dict[str, str]:
    """What ssh would use, as `ssh -G` prints it (first word: keyword, lower case)."""
    assert SSH is not None
    done = subprocess.run([SSH, "-G", *argv], capture_output=True, text=True, check=True)
    return dict(line.partition(" ")[::2] for line in done.stdout.splitlines())


def _assert_pinned(seen: dict[str, str], key: Path, cert: Path, known_hosts: Path) -> None:
    assert seen["identityfile"] == str(key)
    assert seen["certificatefile"] == str(cert)
    assert seen["identitiesonly"] == "yes"
    assert seen["userknownhostsfile"] == str(known_hosts)
    assert seen["globalknownhostsfile"] == "/dev/null"
    assert seen["stricthostkeychecking"] == "true"
    assert seen["ciphers"] == CIPHERS


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Profile:
    monkeypatch.setenv("MEZITE_HOME", str(tmp_path / "home with space"))
    made = Profile(cluster="c1", user="alice@example.com", auth_addr="127.0.0.1:3025",
                   ca_pin="sha256:00", proxy_addr="127.0.0.1:3023")  # fmt: skip
    made.dir.mkdir(parents=True)
    made.cert_path.write_text(_cert("deploy", "root") + "\n")
    return made


def _pinned_files(profile: Profile) -> tuple[Path, Path, Path]:
    return profile.key_path, profile.cert_path, profile.known_hosts_path


def test_mez_ssh_direct_options(profile: Profile) -> None:
    direct = Profile(**{**profile.__dict__, "proxy_addr": ""})
    argv = ssh_argv(direct, NODE, "deploy", ["-o", "Ciphers=aes256-ctr"], [])
    seen = _effective("-F", "/dev/null", *argv[1:])
    _assert_pinned({**seen, "ciphers": CIPHERS}, *_pinned_files(profile))
    assert (seen["hostname"], seen["port"], seen["hostkeyalias"]) == ("10.1.2.3", "3022", NODE.id)
    assert seen["ciphers"] == "aes256-ctr"  # a caller may change the defaults, not the pins
    assert seen["user"] == "deploy"


def test_mez_ssh_through_the_proxy(profile: Profile) -> None:
    config = proxy_ssh_config(profile)
    node = _effective("-F", str(config), "-l", "deploy", NODE.name)
    _assert_pinned(node, *_pinned_files(profile))
    assert node["proxyjump"] == "mezite-proxy.c1"
    hop = _effective("-F", str(config), "mezite-proxy.c1")
    _assert_pinned(hop, *_pinned_files(profile))
    assert (hop["hostname"], hop["port"], hop["user"]) == ("127.0.0.1", "3023", "deploy")


@pytest.mark.parametrize("proxied", [True, False], ids=["proxy", "direct"])
def test_mez_config_logs_in_as_a_login(profile: Profile, tmp_path: Path, proxied: bool) -> None:
    if not proxied:
        profile = Profile(**{**profile.__dict__, "proxy_addr": ""})
    config = tmp_path / "ssh_config"
    config.write_text(config_block(profile, Path("/opt/my mez/mez")))
    seen = _effective("-F", str(config), "web-1.c1")
    _assert_pinned(seen, *_pinned_files(profile))
    assert seen["user"] == "deploy"  # the certificate's first login, not alice@example.com
    if proxied:
        assert seen["proxyjump"] == "mezite-proxy.c1"
    else:
        assert seen["proxycommand"] == "'/opt/my mez/mez' proxy-connect %h %p"


def test_an_agent_identity_logs_in_as_its_first_login(tmp_path: Path) -> None:
    state = BotState(name="ci", cluster_name="c1", auth_server="127.0.0.1:3025", ca_pin="",
                     generation=1, renewal_token="", ssh_key_pem="", ssh_cert=_cert("deploy"),
                     tls_key_pem="", tls_cert_pem="", tls_ca_pem="", host_ca_keys=[],
                     expires=0.0)  # fmt: skip
    config = tmp_path / "ssh_config"
    config.write_text(identity_config(tmp_path, state, [("web-1", "10.1.2.3:3022", NODE.id)]))
    for name in ("web-1", "web-1.c1"):
        seen = _effective("-F", str(config), name)
        _assert_pinned(seen, tmp_path / "key", tmp_path / "key-cert.pub", tmp_path / "known_hosts")
        assert (seen["hostname"], seen["port"], seen["hostkeyalias"]) == (
            "10.1.2.3", "3022", NODE.id
        )  # fmt: skip
        assert seen["user"] == "deploy"
