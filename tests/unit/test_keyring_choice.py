"""The session never lands in a file keyring unless the user chose one."""

from __future__ import annotations

import keyring
import pytest
from keyrings.alt.file import PlaintextKeyring

from proto import profile
from proto.errors import NotAuthenticated


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
