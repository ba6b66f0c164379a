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

The session ID is never written here: it lives in the keyring (service ``mezite``, one
entry per cluster and user). Without a keyring backend, login fails with a way out.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

from proto.errors import BadParameter, NotAuthenticated, NotFound
from proto.files import check_strict, ensure_private_dir, write_private

KEYRING_SERVICE = "mezite"
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
    from cryptography.hazmat.primitives.serialization import (
        SSHCertificate,
        load_ssh_public_identity,
    )

    cert = load_ssh_public_identity(profile.cert_path.read_bytes())
    return float(cert.valid_before) if isinstance(cert, SSHCertificate) else 0.0


def cert_is_fresh(profile: Profile, margin: float = 30.0) -> bool:
    return cert_valid_before(profile) > time.time() + margin


# --- the keyring ----------------------------------------------------------------------

_NO_KEYRING_HINT = (
    "Mezite keeps your session only in the OS keyring. On a desktop, unlock or start your "
    "Secret Service (GNOME Keyring, KWallet); on a headless machine, install keyrings.alt "
    "and set PYTHON_KEYRING_BACKEND=keyrings.alt.file.EncryptedKeyring (or PlaintextKeyring "
    "if you accept a plain file)."
)


def _keyring() -> ModuleType:
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

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
    return keyring


def store_session(profile: Profile, session_id: str) -> None:
    from keyring.errors import KeyringError

    kr = _keyring()
    try:
        kr.set_password(KEYRING_SERVICE, profile.keyring_user, session_id)
    except KeyringError as exc:
        raise NotAuthenticated(
            f"the keyring refused the session: {exc}", hint=_NO_KEYRING_HINT
        ) from exc


def load_session(profile: Profile) -> str:
    from keyring.errors import KeyringError

    kr = _keyring()
    try:
        session = kr.get_password(KEYRING_SERVICE, profile.keyring_user)
    except KeyringError as exc:
        raise NotAuthenticated(f"cannot read the keyring: {exc}", hint=_NO_KEYRING_HINT) from exc
    if not session:
        raise NotAuthenticated("your session has ended", hint="run `mez login`")
    return str(session)


def forget_session(profile: Profile) -> None:
    from keyring.errors import KeyringError, PasswordDeleteError

    kr = _keyring()
    try:
        kr.delete_password(KEYRING_SERVICE, profile.keyring_user)
    except PasswordDeleteError:
        pass
    except KeyringError as exc:
        raise NotAuthenticated(f"cannot update the keyring: {exc}", hint=_NO_KEYRING_HINT) from exc
