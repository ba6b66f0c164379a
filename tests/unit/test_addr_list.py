"""Several addresses in one option value, and the gRPC target made from them."""

from __future__ import annotations

import pytest

from proto.addr import HostPort, parse_addr_list
from proto.client import grpc_target
from proto.errors import BadParameter


def test_a_list_parses_in_order_without_repeats() -> None:
    assert parse_addr_list("a.example:3025, 10.0.0.2:3025,a.example:3025") == [
        HostPort("a.example", 3025),
        HostPort("10.0.0.2", 3025),
    ]
    assert parse_addr_list("[::1]:1,web", 443) == [HostPort("::1", 1), HostPort("web", 443)]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty address list"),
        ("a:1,,b:2", 'invalid address list "a:1,,b:2": item 2 is empty'),
        ("a:1,", "item 2 is empty"),
        ("a:1,b:99999", 'invalid address "b:99999"'),
        ("a:1,b:x", 'port "x" is not a number'),
        ("a:1,b", 'invalid address "b": missing port'),
        ("a:1,bad host:2", "is not a host name or IP address"),
    ],
)
def test_bad_lists_are_one_clear_error(text: str, says: str) -> None:
    with pytest.raises(BadParameter) as err:
        parse_addr_list(text)
    assert says in err.value.message
    assert "\n" not in err.value.message


def test_one_address_is_dialled_as_given() -> None:
    assert grpc_target("auth.example:3025") == "auth.example:3025"
    assert grpc_target("[::1]:3025") == "[::1]:3025"


def test_several_addresses_become_one_resolved_target() -> None:
    assert grpc_target("127.0.0.1:1,localhost:2") in (
        "ipv4:127.0.0.1:1,127.0.0.1:2",
        "ipv6:[::ffff:127.0.0.1]:1,[::ffff:127.0.0.1]:2,[::1]:2",
    )
    assert grpc_target("[::1]:1,[::2]:2") == "ipv6:[::1]:1,[::2]:2"
    assert grpc_target("10.0.0.1:1,[::1]:2") == "ipv6:[::ffff:10.0.0.1]:1,[::1]:2"
