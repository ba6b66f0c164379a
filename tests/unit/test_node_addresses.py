"""What a node may claim as its addresses (``proto.host_claims``), what it claims when
given none (``agent.addresses``), and where the proxy dials it
(``server.proxy.node_dial``). No sockets: interface lists are given."""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

import pytest

from agent.addresses import claimed_hosts, interface_addresses
from proto.addr import HostPort
from proto.errors import BadParameter
from proto.host_claims import MAX_CLAIMS, parse_claims
from server.config import resolve_config
from server.proxy.node_dial import NodeDialPolicy


def claims(*addrs: str, principals: bool = True) -> list[str]:
    return parse_claims(list(addrs), cluster="example.com", name="web-1", principals=principals)


def test_claims_are_put_in_the_form_clients_compare() -> None:
    assert claims(
        "10.0.0.5:3022", "[FD00:0:0::2]:3022", "Web-1.Corp.Example.NET.:22", "10.0.0.5:3022"
    ) == ["10.0.0.5:3022", "[fd00::2]:3022", "web-1.corp.example.net:22"]
    assert claims("web-1.example.com:3022") == ["web-1.example.com:3022"]  # its own name


@pytest.mark.parametrize(
    ("addr", "message"),
    [
        ("proxy:3022", "is the proxy's name"),
        ("PROXY:3022", "is the proxy's name"),
        ("web-2.example.com:3022", "cluster's own names"),
        ("example.com:3022", "cluster's own names"),
        ("0f2c1e9a-1b2c-4d5e-8f90-123456789abc:22", "form of an agent id"),
        ("local-proxy:22", "form of an agent id"),
        ("0.0.0.0:3022", "not an address a client connects to"),
        ("[::]:3022", "not an address a client connects to"),
        ("224.0.0.1:3022", "not an address a client connects to"),
        ("[fe80::1%eth0]:22", "scoped IPv6"),
        ("*.corp.net:22", "invalid advertised address"),
        ("a,b:22", "invalid advertised address"),
        ("web 1:22", "invalid advertised address"),
        ("web-1:0", "use HOST:PORT"),
        ("web-1", "missing port"),
        ("web-1:99999", "invalid advertised address"),
        (" web-1:22", "use HOST:PORT"),
        ("a" * 300 + ":22", "too long"),
    ],
)
def test_bad_claims_are_refused_naming_the_address(addr: str, message: str) -> None:
    with pytest.raises(BadParameter, match=message) as info:
        claims("10.0.0.5:3022", addr)
    assert "\n" not in info.value.message


def test_claims_are_bounded_in_number() -> None:
    many = [f"10.0.0.{i}:22" for i in range(MAX_CLAIMS + 1)]
    with pytest.raises(BadParameter, match=f"at most {MAX_CLAIMS}"):
        claims(*many)
    assert len(claims(*many[:MAX_CLAIMS])) == MAX_CLAIMS


def test_a_dial_address_is_checked_for_syntax_not_for_names() -> None:
    assert claims("proxy:3022", principals=False) == ["proxy:3022"]
    with pytest.raises(BadParameter):
        claims("0.0.0.0:3022", principals=False)


MACHINE = ["127.0.0.1", "::1", "192.0.2.7", "fd00::7", "fe80::1", "169.254.1.1", "10.0.0.7"]


def test_a_specific_listen_address_is_claimed_alone() -> None:
    assert claimed_hosts("10.0.0.7", cluster="c", name="n", machine=MACHINE) == ["10.0.0.7"]
    assert claimed_hosts("::1", cluster="c", name="n", machine=MACHINE) == ["::1"]


def test_a_wildcard_claims_the_machines_addresses_and_host_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "Build-7.Corp.Net")
    v4 = claimed_hosts("0.0.0.0", cluster="c", name="n", machine=MACHINE)
    assert v4 == ["192.0.2.7", "10.0.0.7", "build-7.corp.net"]  # no loopback, link-local, v6
    both = claimed_hosts("::", cluster="c", name="n", machine=MACHINE)
    assert both == ["192.0.2.7", "fd00::7", "10.0.0.7", "build-7.corp.net"]


def test_what_auth_would_refuse_is_left_out_and_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "other.c")
    many = [f"10.0.1.{i}" for i in range(MAX_CLAIMS + 3)]
    with caplog.at_level(logging.WARNING):
        hosts = claimed_hosts("0.0.0.0", cluster="c", name="n", machine=many)
    assert hosts == many[:MAX_CLAIMS]
    assert "not claiming other.c" in caplog.text and "only the first 16" in caplog.text
    parse_claims([f"{h}:22" for h in hosts], cluster="c", name="n")  # auth accepts them


def test_the_machines_addresses_come_from_its_interfaces() -> None:
    found = interface_addresses()
    assert "127.0.0.1" in found
    assert all(ipaddress.ip_address(ip) for ip in found)


def test_the_proxy_dials_the_claimed_port_where_auth_saw_the_node() -> None:
    policy = NodeDialPolicy()
    assert policy.target("127.0.0.1:5432", "10.0.0.7") == HostPort("10.0.0.7", 5432)
    assert policy.target("db.internal:22", "10.0.0.7") == HostPort("10.0.0.7", 22)
    assert policy.target("[::1]:22", "fd00::7") == HostPort("fd00::7", 22)
    assert policy.target("10.0.0.7:22", "") is None  # auth did not say: nowhere
    assert policy.target("junk", "10.0.0.7") is None


def test_the_allowlist_admits_claimed_addresses_in_its_networks_only() -> None:
    policy = NodeDialPolicy([ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00::/8")])
    assert policy.target("10.1.2.3:22", "192.0.2.9") == HostPort("10.1.2.3", 22)
    assert policy.target("[fd00::5]:22", "") == HostPort("fd00::5", 22)
    assert policy.target("10.2.0.1:22", "192.0.2.9") == HostPort("192.0.2.9", 22)
    # A name is never resolved to find out: it is dialled where the node was seen.
    assert policy.target("ten-one.internal:22", "192.0.2.9") == HostPort("192.0.2.9", 22)


def test_the_allowlist_is_a_proxy_setting(tmp_path: Path) -> None:
    def resolve(env: dict[str, str]) -> object:
        return resolve_config(config_file=None, env=env, flags={}).proxy.node_dial_allow

    assert resolve({}) == ()
    env = "MEZITE_PROXY_NODE_DIAL_ALLOW"
    assert resolve({env: "10.0.0.0/8, fd00::/8"}) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )
    file = tmp_path / "mezite.toml"
    file.write_text('[proxy]\nnode_dial_allow = ["192.0.2.5/32"]\n')
    config = resolve_config(config_file=file, env={}, flags={})
    assert config.proxy.node_dial_allow == (ipaddress.ip_network("192.0.2.5/32"),)
    for wrong in ("10.0.0.1/8", "ten", "10.0.0.0/33"):
        with pytest.raises(BadParameter, match=f"{env}: .* is not a network"):
            resolve({env: wrong})
    file.write_text('[proxy]\nnode_dial_allow = "10.0.0.0/8"\n')
    with pytest.raises(BadParameter, match="node_dial_allow: expected an array"):
        resolve_config(config_file=file, env={}, flags={})


def test_renew_soon_cuts_the_wait_short() -> None:
    import asyncio
    from dataclasses import dataclass

    from proto.clock import FakeClock
    from proto.errors import NotAuthenticated
    from proto.lifecycle import Renewer

    @dataclass(frozen=True)
    class Creds:
        expires: float

    clock = FakeClock()
    renewed: list[Creds] = []

    async def never(seconds: float) -> None:
        await asyncio.Event().wait()  # the usual time never comes

    async def renew(current: Creds) -> Creds:
        renewed.append(current)
        raise NotAuthenticated("stop here")

    async def adopt(fresh: Creds) -> None:
        raise AssertionError("not reached")

    async def go() -> None:
        renewer = Renewer("node n", Creds(clock.now() + 86400), renew=renew, adopt=adopt,
                          clock=clock, sleep=never)  # fmt: skip
        task = asyncio.create_task(renewer.run())
        await asyncio.sleep(0.05)
        assert renewed == [] and not task.done()
        renewer.renew_soon()
        await asyncio.wait_for(task, 5)

    asyncio.run(go())
    assert len(renewed) == 1
