"""The user's client state: ``~/.mezite`` (or ``$MEZITE_HOME``), and the session in the OS
keyring.

    ~/.mezite/                 0700; what is in it is refused as OpenSSH's StrictModes would
                               (symbolic links, another owner, group- or world-writable)
      current                  name of the active cluster
      <cluster>/profile.json   cluster, addresses, user, CA pin
      <cluster>/key            the user's private key (0600; refused if others can read)
      <cluster>/key-cert.pub   the short-lived SSH certificate
      <cluster>/known_hosts    @cert-authority lines for the host CA
      <cluster>/ca.pem         the cluster's TLS CA bundle

The session ID is never written here: it lives in a keyring (service ``mezite``, one
entry per cluster and user), the one profile.json names: ``os``, whatever the ``keyring``
library chooses (Secret Service, macOS Keychain, Windows Credential Locker, or the
backend PYTHON_KEYRING_BACKEND names), or ``kernel``, the Linux kernel's user keyring
(proto/kernel_keyring.py, for headless machines). Without a usable keyring, login fails
with a way out; the session never lands in a file the user did not choose.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from proto.errors import BadParameter, NotAuthenticated, NotFound
from proto.files import check_strict, ensure_private_dir, write_private

KEYRING_SERVICE = "mezite"
KEYRINGS = ("os", "kernel")  # `mez login --keyring`
HOME_ENV = "MEZITE_HOME"
_CLUSTER_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")


def mezite_home() -> Path:
    override = os.environ.get(HOME_ENV)
    return Path(override).expanduser() if override else Path.home() / ".mezite"


def _checked_home(create: bool) -> Path:
    home = mezite_home()
    if create:
        return ensure_private_dir(home)
    if not home.exists():
        raise NotAuthenticated("not logged in", hint="run `mez login`")
    # The home itself may be a link (dotfile managers make them); where it leads is
    # checked. Everything under it must be a file of its own.
    check_strict(home.resolve(), directory=True)
    return home


@dataclass(frozen=True)
class Profile:
    cluster: str
    user: str
    auth_addr: str
    ca_pin: str
    proxy_addr: str = ""  # the proxy's SSH hop, when there is one
    web_addr: str = ""  # the proxy's HTTPS address: then mez talks only to the proxy
    keyring: str = "os"  # which keyring holds the session: one of KEYRINGS
    # A SPIFFE login (no session): where its SVID is, files or a Workload API socket.
    spiffe_svid: str = ""
    spiffe_key: str = ""
    spiffe_socket: str = ""

    @property
    def is_spiffe(self) -> bool:
        return bool(self.spiffe_socket or self.spiffe_svid)

    @property
    def dir(self) -> Path:
        return mezite_home() / self.cluster

    @property
    def key_path(self) -> Path:
        return self.dir / "key"

    @property
    def cert_path(self) -> Path:
        return self.dir / "key-cert.pub"

    @property
    def known_hosts_path(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def ca_path(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def profile_path(self) -> Path:
        return self.dir / "profile.json"

    @property
    def keyring_user(self) -> str:
        return f"{self.cluster}/{self.user}"

    def save(self) -> None:
        if not _CLUSTER_RE.fullmatch(self.cluster):
            raise BadParameter(f"the server gave an invalid cluster name {self.cluster[:80]!r}")
        check_keyring_name(self.keyring)
        home = _checked_home(create=True)
        ensure_private_dir(self.dir)
        write_private(self.profile_path, json.dumps(asdict(self), indent=2))
        write_private(home / "current", self.cluster)

    def check_files(self) -> None:
        """Refuse, as OpenSSH's StrictModes would, a profile whose files another user
        could have put there or changed: symbolic links, files of another owner, group-
        or world-writable ones, and a key (or the cluster directory) others can read."""
        _checked_home(create=False)
        check_strict(self.dir, directory=True, secret=True)
        check_strict(self.key_path, secret=True)
        for path in (self.cert_path, self.known_hosts_path, self.ca_path, self.profile_path):
            check_strict(path)


def load_profile(cluster: str | None = None) -> Profile:
    home = _checked_home(create=False)
    if cluster is None:
        current = home / "current"
        if not current.exists():
            raise NotAuthenticated("not logged in", hint="run `mez login`")
        check_strict(current)
        cluster = current.read_text().strip()
    if not _CLUSTER_RE.fullmatch(cluster):
        raise BadParameter(f"invalid cluster name {cluster[:80]!r}")
    path = home / cluster / "profile.json"
    if not path.exists():
        raise NotFound(f"no profile for cluster {cluster!r}", hint="run `mez login`")
    check_strict(path.parent, directory=True, secret=True)
    check_strict(path)
    profile = Profile(**json.loads(path.read_text()))
    profile.check_files()
    return profile


def remove_profile(profile: Profile) -> None:
    for path in (profile.key_path, profile.cert_path, profile.known_hosts_path,
                 profile.ca_path, profile.profile_path):  # fmt: skip
        path.unlink(missing_ok=True)
    if profile.dir.exists() and not any(profile.dir.iterdir()):
        profile.dir.rmdir()
    current = mezite_home() / "current"
    if current.exists() and current.read_text().strip() == profile.cluster:
        current.unlink()


def cert_valid_before(profile: Profile) -> float:
    """When the stored certificate expires; 0 when there is none."""
    if not profile.cert_path.exists():
        return 0.0
    from proto.certfields import cert_fields

    return cert_fields(profile.cert_path.read_bytes()).valid_before


def cert_is_fresh(profile: Profile, margin: float = 30.0) -> bool:
    return cert_valid_before(profile) > time.time() + margin


# --- the keyring ----------------------------------------------------------------------

_NO_KEYRING_HINT = (
    "Mezite keeps your session only in a keyring. On a desktop, unlock or start your "
    "Secret Service (GNOME Keyring, KWallet); on a headless Linux machine, log in with "
    "`mez login --keyring kernel` (the kernel's user keyring), or install keyrings.alt and "
    "set PYTHON_KEYRING_BACKEND=keyrings.alt.file.EncryptedKeyring if you accept a file."
)
_NO_DBUS_HINT = (
    "run mez inside your desktop session (or under dbus-run-session with a keyring daemon); "
    "on a headless machine use `mez login --keyring kernel`"
)
_LOCKED_HINT = (
    "unlock your login keyring (log in to the desktop, or `gnome-keyring-daemon --unlock`), "
    "then retry; on a headless machine use `mez login --keyring kernel`"
)
_KERNEL_HINT = (
    "the kernel keyring needs Linux with keyutils (apt-get install keyutils); check it "
    "with `keyctl show @u`, or log in with `--keyring os`"
)


class SessionStore(Protocol):
    """What the session needs of a keyring: a ``keyring`` backend, or KernelKeyring."""

    def set_password(self, service: str, username: str, password: str) -> None: ...

    def get_password(self, service: str, username: str) -> str | None: ...

    def delete_password(self, service: str, username: str) -> None: ...


def check_keyring_name(name: str) -> str:
    if name not in KEYRINGS:
        raise BadParameter(
            f"unknown keyring {name[:40]!r}", hint=f"choose one of: {', '.join(KEYRINGS)}"
        )
    return name


@contextmanager
def _keyring_errors(doing: str) -> Iterator[None]:
    """A keyring's failures, from its library or the D-Bus and kernel calls under it, as
    one NotAuthenticated line that says what failed and the way out."""
    from keyring.errors import KeyringError, KeyringLocked

    from proto.kernel_keyring import KernelKeyringError

    try:
        yield
    except KeyringLocked as exc:
        raise NotAuthenticated(f"{doing}: the keyring is locked", hint=_LOCKED_HINT) from exc
    except KernelKeyringError as exc:
        raise NotAuthenticated(f"{doing}: {exc}", hint=_KERNEL_HINT) from exc
    except KeyringError as exc:
        raise NotAuthenticated(f"{doing}: {exc}", hint=_NO_KEYRING_HINT) from exc
    except (RuntimeError, OSError) as exc:
        # On Linux, the Secret Service backend reports an unreachable bus or daemon so.
        if sys.platform.startswith("linux"):
            raise NotAuthenticated(_dbus_problem(doing, exc), hint=_NO_DBUS_HINT) from exc
        raise NotAuthenticated(f"{doing}: {exc}", hint=_NO_KEYRING_HINT) from exc
    except Exception as exc:
        if type(exc).__module__.startswith(("secretstorage", "jeepney")):
            raise NotAuthenticated(_dbus_problem(doing, exc), hint=_NO_DBUS_HINT) from exc
        raise


def _dbus_problem(doing: str, exc: Exception) -> str:
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return f"{doing}: DBUS_SESSION_BUS_ADDRESS is unset: no Secret Service to reach"
    detail = " ".join(str(exc).split())[:160] or type(exc).__name__
    return f"{doing}: cannot reach the Secret Service over D-Bus ({detail})"


def session_store(name: str) -> SessionStore:
    """The keyring ``name`` (one of KEYRINGS) selects, checked to be one that may hold a
    session: for ``os``, not the fail backend and not a file nobody asked for."""
    check_keyring_name(name)
    if name == "kernel":
        from proto.kernel_keyring import KernelKeyring, check_available

        with _keyring_errors("the kernel keyring cannot be used"):
            check_available()
        return KernelKeyring()
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    with _keyring_errors("the OS keyring cannot be used"):
        backend = keyring.get_keyring()
    chain = getattr(backend, "backends", None)
    # keyrings.alt's file backends win keyring's automatic choice on a machine without a
    # Secret Service; a session must not land in a file unless the user asked for it.
    fallback = type(backend).__module__.startswith("keyrings.alt") and not os.environ.get(
        "PYTHON_KEYRING_BACKEND"
    )
    if isinstance(backend, FailKeyring) or chain == [] or fallback:
        raise NotAuthenticated(
            "no OS keyring is available to keep the session", hint=_NO_KEYRING_HINT
        )
    return backend


def describe_keyring(profile: Profile) -> str:
    """Which keyring holds the session, as `mez status` prints it."""
    if profile.keyring == "kernel":
        from proto.kernel_keyring import NAME, description

        key = description(KEYRING_SERVICE, profile.keyring_user)
        return f"{NAME}, key user:{key} of uid {os.getuid()}"
    backend = session_store(profile.keyring)
    kind = type(backend)
    return f"{getattr(backend, 'name', kind.__name__)} ({kind.__module__}.{kind.__qualname__})"


def store_session(profile: Profile, session_id: str) -> None:
    store = session_store(profile.keyring)
    with _keyring_errors("the keyring refused the session"):
        store.set_password(KEYRING_SERVICE, profile.keyring_user, session_id)


def load_session(profile: Profile) -> str:
    store = session_store(profile.keyring)
    with _keyring_errors("cannot read the keyring"):
        session = store.get_password(KEYRING_SERVICE, profile.keyring_user)
    if not session:
        raise NotAuthenticated("your session has ended", hint="run `mez login`")
    return str(session)


def forget_session(profile: Profile) -> None:
    from keyring.errors import PasswordDeleteError

    store = session_store(profile.keyring)
    # Nothing stored (PasswordDeleteError) is nothing to forget.
    with _keyring_errors("cannot update the keyring"), suppress(PasswordDeleteError):
        store.delete_password(KEYRING_SERVICE, profile.keyring_user)
