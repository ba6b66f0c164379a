"""What a lone proxy asks auth to put on its certificates."""

from __future__ import annotations

import socket

import pytest

from server.config import resolve_config
from server.proxy.lone import advertised

PROXY = {"roles": "proxy", "auth_server": "auth.example.com", "data_dir": "/nonexistent"}


def names(**flags: object) -> list[str]:
    return advertised(resolve_config(config_file=None, env={}, flags={**PROXY, **flags}))


def test_every_interface_names_loopback_and_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "Edge-Host")
    assert names(**{"proxy.public_addr": "proxy.example.com"}) == [
        "proxy.example.com:443",
        "127.0.0.1:3080",
        "localhost:3080",
        "edge-host:3080",
        "127.0.0.1:3023",
        "localhost:3023",
        "edge-host:3023",
    ]


def test_specific_listen_hosts_are_named_as_given_and_port_0_as_the_default() -> None:
    got = names(
        **{"proxy.web_listen_addr": "10.1.2.3:0", "proxy.ssh_listen_addr": "127.0.0.1:4023"}
    )
    assert got == ["10.1.2.3:3080", "127.0.0.1:4023", "localhost:4023"]
