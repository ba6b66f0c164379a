"""The session never lands in a file keyring unless the user chose one."""

from __future__ import annotations

import keyring
import pytest
from keyrings.alt.file import PlaintextKeyring

from proto import profile
from proto.errors import BadParameter, NotAuthenticated


def test_an_automatically_chosen_file_keyring_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setattr(keyring, "get_keyring", lambda: PlaintextKeyring())
    with pytest.raises(NotAuthenticated, match="no OS keyring") as info:
        profile.session_store("os")
    assert info.value.hint is not None and "PYTHON_KEYRING_BACKEND" in info.value.hint


def test_a_file_keyring_the_user_asked_for_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    chosen = PlaintextKeyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: chosen)
    assert profile.session_store("os") is chosen


def _refusal(exc: Exception, monkeypatch: pytest.MonkeyPatch) -> NotAuthenticated:
    def broken() -> None:
        raise exc

    monkeypatch.setattr(keyring, "get_keyring", broken)
    with pytest.raises(NotAuthenticated) as info:
        profile.session_store("os")
    return info.value


def test_no_session_bus_names_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    err = _refusal(RuntimeError("Unable to initialize SecretService"), monkeypatch)
    assert "DBUS_SESSION_BUS_ADDRESS is unset" in err.message
    assert err.hint is not None and "--keyring kernel" in err.hint


def test_an_unreachable_bus_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
    err = _refusal(FileNotFoundError(2, "No such file or directory"), monkeypatch)
    assert "cannot reach the Secret Service over D-Bus" in err.message
    assert "No such file" in err.message and "\n" not in err.message


def test_a_locked_keyring_says_how_to_unlock_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.errors import KeyringLocked

    err = _refusal(KeyringLocked("Failed to unlock the collection!"), monkeypatch)
    assert "locked" in err.message
    assert err.hint is not None and "--unlock" in err.hint and "--keyring kernel" in err.hint


def test_an_unknown_keyring_name_is_refused() -> None:
    with pytest.raises(BadParameter, match="unknown keyring"):
        profile.session_store("plaintext")


def test_a_bug_is_not_dressed_as_a_keyring_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(keyring, "get_keyring", broken)
    with pytest.raises(KeyError):
        profile.session_store("os")
