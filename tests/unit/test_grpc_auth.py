"""The guard's classification table and its strict header parsing."""

from __future__ import annotations

import pytest

from proto.errors import NotAuthenticated
from proto.v1 import auth_pb2
from server.auth.rpc.guard import (
    ADMIN_ONLY_METHODS,
    AGENT_METHODS,
    METHOD_ACCESS,
    UNAUTHENTICATED_METHODS,
    USER_METHODS,
    PeerCertificate,
    Principal,
    parse_agent_id,
    parse_bearer,
)

SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
ALL_PATHS = {f"/{SERVICE.full_name}/{m.name}" for m in SERVICE.methods}
CLASSES = (UNAUTHENTICATED_METHODS, USER_METHODS, AGENT_METHODS, ADMIN_ONLY_METHODS)


@pytest.mark.parametrize("path", sorted(ALL_PATHS))
def test_every_rpc_is_classified_exactly_once(path: str) -> None:
    assert sum(path in cls for cls in CLASSES) == 1


def test_no_class_names_a_method_the_service_lacks() -> None:
    listed = set().union(*CLASSES)
    assert listed == ALL_PATHS
    assert set(METHOD_ACCESS) == ALL_PATHS


def test_join_and_login_rpcs_are_the_only_open_ones() -> None:
    names = {p.rsplit("/", 1)[1] for p in UNAUTHENTICATED_METHODS}
    assert names == {
        "Ping", "GetClusterCAs", "AuthenticateLocal", "AcceptInvite", "RegisterAgent",
        "RegisterUsingIAMMethod", "BootstrapAgentIdentity", "AuthenticateSPIFFE",
        "GetSPIFFEBundle",
    }  # fmt: skip


def test_bearer_parsing_is_exact() -> None:
    token = "A" * 43
    assert parse_bearer(f"Bearer {token}") == token
    for bad in (
        f"bearer {token}",
        f"Bearer  {token}",
        f"Bearer {token} ",
        f"Bearer\t{token}",
        "Bearer ",
        "Bearer short",
        f"Bearer {token}!",
        f"Token {token}",
        "Bearer " + "A" * 300,
    ):
        with pytest.raises(NotAuthenticated):
            parse_bearer(bad)


def test_agent_id_parsing() -> None:
    assert parse_agent_id("node-1.example_2@x") == "node-1.example_2@x"
    for bad in ("", "-lead", "a b", "a/b", "a\x00", "x" * 129):
        with pytest.raises(NotAuthenticated):
            parse_agent_id(bad)


def test_peer_certificate_from_ssl_dict() -> None:
    cert = {
        "subject": (
            (("organizationName", "c"),),
            (("organizationalUnitName", "node"),),
            (("commonName", "n1"),),
        )
    }
    peer = PeerCertificate.from_ssl_dict(cert)
    assert peer == PeerCertificate(common_name="n1", organizational_unit="node", organization="c")
    assert PeerCertificate.from_ssl_dict(None) is None
    assert PeerCertificate.from_ssl_dict({}) is None
    two_cns = {"subject": ((("commonName", "a"),), (("commonName", "b"),))}
    assert PeerCertificate.from_ssl_dict(two_cns) is None


def test_admin_is_a_role_for_users_and_a_kind_for_agents() -> None:
    assert Principal(kind="user", name="a", roles=("admin",)).is_admin
    assert not Principal(kind="user", name="a", roles=("access", "administrator")).is_admin
    assert Principal(kind="agent", name="x", agent_kind="admin").is_admin
    assert not Principal(kind="agent", name="x", agent_kind="node", roles=("admin",)).is_admin
    assert not Principal(kind="anonymous").is_admin
