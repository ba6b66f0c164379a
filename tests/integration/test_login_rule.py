"""One rule for logins at every gRPC entry point that takes one, the same rule the user
certificate's principals are checked by: a login accepted anywhere can be signed, and
one that cannot be signed is refused where it comes in, changing nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from proto.client import AuthClient
from proto.errors import BadParameter
from proto.v1 import auth_pb2 as pb
from server.auth.crypto.passwords import hash_password
from server.auth.stores.incarnations import new_incarnation
from server.auth.stores.users import User
from tests.integration.conftest import PASSWORD, login
from tests.servers import RunningAuth

# Each is refused by the certificate signer, so each must be refused on the way in.
BAD_LOGINS = ["!root", "ro!ot", "a,b", "*", "ro?t", "-oProxyCommand", "a b", "a\x00b", ""]


def _state(admin: AuthClient) -> tuple[object, ...]:
    return (
        admin.rpc.ListUsers(pb.ListUsersRequest()).SerializeToString(deterministic=True),
        admin.rpc.ListRoles(pb.ListRolesRequest()).SerializeToString(deterministic=True),
        admin.rpc.ListAgentIdentities(pb.ListAgentIdentitiesRequest()).SerializeToString(
            deterministic=True
        ),
        admin.rpc.ListLocks(pb.ListLocksRequest()).SerializeToString(deterministic=True),
    )


def _role(allow: list[str] | None = None, deny: list[str] | None = None) -> pb.Role:
    return pb.Role(
        name="newrole",
        allow=pb.RoleConditions(logins=allow or ["ubuntu"]),
        deny=pb.RoleConditions(logins=deny or []),
    )


ENTRY_POINTS: dict[str, Callable[[AuthClient, str], object]] = {
    "CreateUser": lambda admin, bad: admin.rpc.CreateUser(
        pb.CreateUserRequest(
            name="newuser", roles=["access"], logins=["fine", bad], password=PASSWORD
        )
    ),
    "CreateUser-invite": lambda admin, bad: admin.rpc.CreateUser(
        pb.CreateUserRequest(name="newuser", roles=["access"], logins=[bad])
    ),
    "UpsertRole-allow": lambda admin, bad: admin.rpc.UpsertRole(
        pb.UpsertRoleRequest(role=_role(allow=["ubuntu", bad]))
    ),
    "UpsertRole-deny": lambda admin, bad: admin.rpc.UpsertRole(
        pb.UpsertRoleRequest(role=_role(deny=[bad]))
    ),
    "CreateAgentIdentity": lambda admin, bad: admin.rpc.CreateAgentIdentity(
        pb.CreateAgentIdentityRequest(
            name="newbot",
            roles=["access"],
            logins=["fine", bad],
            ttl_seconds=3600,
            token_ttl_seconds=3600,
        )
    ),
    "CreateLock-login": lambda admin, bad: admin.rpc.CreateLock(
        pb.CreateLockRequest(target=pb.LockTarget(login=bad), reason="x")
    ),
}


# An empty lock target is no target at all: refused before the login rule, elsewhere.
CASES = [
    (entry, bad)
    for entry in ENTRY_POINTS
    for bad in BAD_LOGINS
    if not (entry == "CreateLock-login" and bad == "")
]


@pytest.mark.parametrize(("entry", "bad"), CASES, ids=[f"{e}-{b!r}" for e, b in CASES])
def test_every_entry_point_refuses_a_login_that_cannot_be_signed(
    auth: RunningAuth, entry: str, bad: str
) -> None:
    with auth.admin() as admin:
        before = _state(admin)
        with pytest.raises(BadParameter) as info:
            ENTRY_POINTS[entry](admin, bad)
        assert "login" in info.value.message or "principal" in info.value.message
        assert _state(admin) == before


def _public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def test_a_stored_login_that_cannot_be_signed_no_longer_blocks_certificates(
    auth: RunningAuth,
) -> None:
    # A user written before the rule (the store itself takes what it is given).
    async def seed() -> None:
        user = User(
            name="legacy",
            roles=("access",),
            logins=("legacy", "!root"),
            created=0.0,
            password_hash=await hash_password(PASSWORD),
            incarnation=new_incarnation(),
        )
        await auth.server.users.create(user)

    auth.call(seed)
    with login(auth, "legacy") as client:
        me = client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
        assert "!root" not in me.logins and "legacy" in me.logins
        certs = client.rpc.IssueUserCerts(pb.IssueUserCertsRequest(ssh_public_key=_public_key()))
    assert certs.ssh_certificate.startswith("ssh-ed25519-cert-v01@openssh.com ")
