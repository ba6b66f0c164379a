"""RoleStore on a real SQLite backend: CRUD, presets, and what a restart keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from proto.errors import BadParameter, NotFound
from server.auth.stores.roles import (
    ADMIN_ROLE,
    INTERNAL_LOGINS,
    PRESET_ROLES,
    ROLE_PREFIX,
    Role,
    RoleConditions,
    RoleOptions,
    RoleStore,
    role_to_json,
)
from server.backend import Item, SQLiteBackend

DEV = Role(
    name="dev",
    allow=RoleConditions(logins=(INTERNAL_LOGINS, "ubuntu"), node_labels={"env": ("dev",)}),
    deny=RoleConditions(logins=("root",)),
    options=RoleOptions(max_session_ttl=3600, permit_pty=True),
)


async def test_upsert_get_list_delete(tmp_path: Path) -> None:
    async with SQLiteBackend(tmp_path / "b.sqlite") as backend:
        store = RoleStore(backend)
        assert await store.list() == []
        assert await store.upsert(DEV) is True
        assert await store.get("dev") == DEV
        item = await backend.get("roles/dev")
        assert item.key == "roles/dev"

        changed = Role(name="dev", allow=RoleConditions(logins=("deploy",)))
        assert await store.upsert(changed) is False
        assert await store.get("dev") == changed

        await store.upsert(Role(name="alpha"))
        await store.upsert(Role(name="zulu"))
        assert [r.name for r in await store.list()] == ["alpha", "dev", "zulu"]

        await store.delete("dev")
        with pytest.raises(NotFound, match="role dev not found"):
            await store.get("dev")
        with pytest.raises(NotFound, match="role dev not found"):
            await store.delete("dev")
        assert [r.name for r in await store.list()] == ["alpha", "zulu"]


async def test_list_ignores_other_prefixes(tmp_path: Path) -> None:
    async with SQLiteBackend(tmp_path / "b.sqlite") as backend:
        await backend.put(Item("rolesX", b"junk"))
        await backend.put(Item("users/dev", b"junk"))
        store = RoleStore(backend)
        await store.upsert(DEV)
        assert await store.list() == [DEV]


async def test_upsert_validates(tmp_path: Path) -> None:
    async with SQLiteBackend(tmp_path / "b.sqlite") as backend:
        store = RoleStore(backend)
        with pytest.raises(BadParameter, match="unsupported template"):
            await store.upsert(Role(name="x", allow=RoleConditions(logins=("{{internal.y}}",))))
        with pytest.raises(BadParameter, match="invalid role name"):
            await store.upsert(Role(name="../admin"))
        assert await store.list() == []


async def test_bad_names(tmp_path: Path) -> None:
    async with SQLiteBackend(tmp_path / "b.sqlite") as backend:
        store = RoleStore(backend)
        with pytest.raises(BadParameter, match="invalid role name"):
            await store.get("a/b")
        with pytest.raises(BadParameter, match="invalid role name"):
            await store.delete("")


async def test_presets_created_once_and_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    async with SQLiteBackend(path) as backend:
        store = RoleStore(backend)
        assert await store.ensure_presets() == ["admin", "access", "auditor"]
        assert {r.name: r for r in await store.list()} == {r.name: r for r in PRESET_ROLES}

        edited = Role(
            name="access",
            allow=RoleConditions(logins=("ubuntu",), node_labels={"env": ("dev",)}),
        )
        await store.upsert(edited)
        await store.delete("auditor")
        assert await store.ensure_presets() == ["auditor"]  # only the missing one
        assert await store.get("access") == edited

    # A restart: the edit survives, nothing is recreated.
    async with SQLiteBackend(path) as backend:
        store = RoleStore(backend)
        assert await store.ensure_presets() == []
        assert await store.get("access") == edited
        assert await store.get("auditor") == next(r for r in PRESET_ROLES if r.name == "auditor")


async def test_admin_preset_cannot_be_deleted(tmp_path: Path) -> None:
    async with SQLiteBackend(tmp_path / "b.sqlite") as backend:
        store = RoleStore(backend)
        await store.ensure_presets()
        with pytest.raises(BadParameter, match="cannot be deleted"):
            await store.delete(ADMIN_ROLE)
        assert (await store.get(ADMIN_ROLE)).name == "admin"
        # The other presets can go.
        await store.delete("access")
        await store.delete("auditor")
        assert [r.name for r in await store.list()] == ["admin"]


async def test_get_many_skips_missing(tmp_path: Path) -> None:
    async with SQLiteBackend(tmp_path / "b.sqlite") as backend:
        store = RoleStore(backend)
        await store.ensure_presets()
        await store.upsert(DEV)
        roles = await store.get_many(["dev", "gone", "auditor", "dev", "bad name", "admin"])
        assert [r.name for r in roles] == ["dev", "auditor", "admin"]
        assert roles[0] == DEV
        await store.delete("dev")
        assert [r.name for r in await store.get_many(["dev", "auditor"])] == ["auditor"]
        assert await store.get_many([]) == []


async def test_corrupt_record_is_reported(tmp_path: Path) -> None:
    async with SQLiteBackend(tmp_path / "b.sqlite") as backend:
        await backend.put(Item(ROLE_PREFIX + "dev", b"{not json"))
        store = RoleStore(backend)
        with pytest.raises(BadParameter, match="stored role is malformed"):
            await store.get("dev")
        # A stored role is validated on read too.
        await backend.put(Item(ROLE_PREFIX + "dev", role_to_json(DEV).replace(b"ubuntu", b"a b")))
        with pytest.raises(BadParameter, match="invalid login"):
            await store.get("dev")
