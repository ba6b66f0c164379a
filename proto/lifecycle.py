"""One credential lifecycle for every agent kind (node, lone proxy, agent identity):
join by pin, keep the identity on disk, renew it before it lapses, stop when auth says no.

Each kind used to carry its own copy of these, and the copies drifted (three backoff
policies; one kind stopped when auth refused it, two retried forever after removal). What
is left to a kind is what really differs: the register call it joins with, what it keeps
on disk, the renewal RPC, and how it puts fresh credentials into use (``adopt``).

- ``join_by_pin``: the CA is fetched and checked against the pin before the one-time
  token is sent, so a server that is not the pinned cluster never sees the token.
  ``JoinKeys`` keeps a join's keys until its identity is saved, so that a join whose
  reply was lost can be run again and answered again.
- ``IdentityDir`` and ``Generations``: a private directory (0700) holding a JSON document
  and private files (0600), each written atomically; the document is written last, so it
  only ever names a complete set. ``Generations`` keeps whole sets side by side and
  switches a ``current`` symlink, for readers that must never pair a new key with an old
  certificate.
- ``Renewer``: renews when a third of the remaining lifetime is left (jittered so a fleet
  does not renew in step), backs off on failure, and stops for good, saying so once,
  when auth refuses the identity itself (NotAuthenticated: removed or never known;
  AccessDenied: locked). Retrying cannot help then: only an admin can.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from proto.backoff import Backoff, jittered
from proto.clock import Clock
from proto.errors import (
    AccessDenied,
    ConnectionProblem,
    MeziteError,
    NotAuthenticated,
    NotFound,
)
from proto.failpoint import failpoint
from proto.files import check_private_file, ensure_private_dir, write_private

if TYPE_CHECKING:
    from proto.v1 import auth_pb2 as pb
    from proto.v1.auth_pb2_grpc import AuthServiceStub

log = logging.getLogger(__name__)

R = TypeVar("R")

# --- join ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Joined(Generic[R]):
    """What a join learnt: the cluster, the pin it was verified by, and auth's reply."""

    cluster_name: str
    ca_pin: str
    reply: R


def join_by_pin(
    auth_server: str,
    ca_pin: str,
    register: Callable[[AuthServiceStub], R],
    *,
    hint: str,
    rerun: bool = False,
) -> Joined[R]:
    """Fetch the cluster CA by ``ca_pin``, then make the kind's ``register`` call over a
    channel verified against it. A refused token is re-raised with ``hint`` (where such
    tokens come from), since the server's message cannot know which kind was joining.
    ``rerun``: the kind keeps its keys (``JoinKeys``), so a lost reply is answered again
    when the same join is run again, and a broken call says so."""
    from proto.bootstrap import fetch_ca_by_pin
    from proto.client import AuthClient
    from proto.trust import parse_pin
    from proto.v1 import auth_pb2 as pb

    pin = parse_pin(ca_pin)
    ca_pem = fetch_ca_by_pin(auth_server, pin)
    with AuthClient(auth_server, ca_pem.encode()) as client:
        cluster = client.rpc.Ping(pb.PingRequest()).cluster_name
        try:
            reply = register(client.rpc)
        except NotAuthenticated as err:
            raise NotAuthenticated(err.message, hint=hint) from err
        except ConnectionProblem as err:
            if not rerun:
                raise
            # The call may have been committed and its reply lost: with the keys kept
            # (``JoinKeys``), the same command completes it rather than being refused.
            raise ConnectionProblem(
                err.message,
                hint="once the auth service answers again, run the same command again: "
                "it completes this join",
            ) from err
    failpoint("join.replied")
    return Joined(cluster_name=cluster, ca_pin=pin, reply=reply)


def register_call(
    join_method: str, aws_region: str | None, register: pb.RegisterAgentRequest
) -> Callable[[AuthServiceStub], pb.RegisterAgentResponse]:
    """How a node or proxy joins: RegisterAgent with a one-time token, or
    RegisterUsingIAMMethod with this machine's AWS identity (found, and botocore loaded,
    before anything is sent)."""
    if join_method != "iam":
        return lambda rpc: rpc.RegisterAgent(register)
    from proto.aws_join import aws_signer, register_by_iam

    signer = aws_signer(aws_region)
    return lambda rpc: register_by_iam(rpc, register, signer)


JOIN_KEYS_FILE = "join-keys.json"


class JoinKeys:
    """The private keys a join asks auth to certify, kept (0600) from before the call
    until the identity they belong to is saved. When a join's reply is lost (auth
    committed it, then the connection or this process died), running the join again
    sends the same keys, and auth answers it for the record it made instead of refusing
    the name as taken. Keys kept for another name, or unreadable, are replaced."""

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / JOIN_KEYS_FILE
        self._name = name
        self._made_directory = False

    def get(self, new: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        kept = self._kept()
        if kept is not None:
            log.info("joining again with the keys kept in %s", self.path)
            return kept
        keys = new()
        self._made_directory = not self.path.parent.exists()
        ensure_private_dir(self.path.parent)
        write_private(self.path, json.dumps({"name": self._name, "keys": keys}))
        return keys

    def _kept(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(check_private_file(self.path).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, MeziteError) as exc:
            log.warning("not reusing the join keys in %s: %s", self.path, exc)
            return None
        if not isinstance(doc, dict) or doc.get("name") != self._name:
            return None
        keys = doc.get("keys")
        return keys if isinstance(keys, dict) else None

    def discard(self) -> None:
        """The identity is saved (the keys live on in it), or the join was refused: it
        is not retried. A directory made only for the keys goes with them."""
        self.path.unlink(missing_ok=True)
        if self._made_directory:
            with contextlib.suppress(OSError):  # not empty: something else is there now
                self.path.parent.rmdir()

    @contextlib.contextmanager
    def refusal_discards(self) -> Iterator[None]:
        """Around the join call: a refusal (a bad token, a wrong pin, a taken name)
        leaves nothing behind; a broken call (ConnectionProblem) or an interruption
        keeps the keys, since auth may have committed the join."""
        try:
            yield
        except ConnectionProblem:
            raise
        except MeziteError:
            self.discard()
            raise


# --- the identity on disk -----------------------------------------------------------------


class IdentityDir:
    """One identity in a private directory: ``document`` (JSON) and private files."""

    def __init__(self, directory: Path, document: str) -> None:
        self.directory = directory
        self.document = directory / document

    def exists(self) -> bool:
        return self.document.exists()

    def peek(self) -> dict[str, Any] | None:
        """The document as it is, unchecked: for messages about an identity, never for
        using it."""
        if not self.exists():
            return None
        doc: dict[str, Any] = json.loads(self.document.read_text())
        return doc

    def load(self, files: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, str]] | None:
        """The document and the named files, or None when nothing was saved here.
        Refuses a directory or file that other users could read or change."""
        if not self.exists():
            return None
        ensure_private_dir(self.directory)
        try:
            doc = json.loads(check_private_file(self.document).read_text())
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            contents = {
                name: check_private_file(self.directory / name).read_text() for name in files
            }
        except (OSError, ValueError) as exc:  # missing, unreadable, truncated, not JSON
            raise self.damaged(exc) from None
        return doc, contents

    def damaged(self, exc: OSError | ValueError) -> MeziteError:
        """The one error for an identity that cannot be read back."""
        if isinstance(exc, OSError):
            what = f"{exc.filename}: {exc.strerror}"
        else:
            what = f"{self.document.name}: {exc}"
        return NotFound(
            f"the identity in {self.directory} is damaged ({what})",
            hint="restore the directory from a backup, or move it away and join again",
        )

    def save(self, doc: Mapping[str, Any], files: Mapping[str, str] | None = None) -> None:
        ensure_private_dir(self.directory)
        for name, content in (files or {}).items():
            write_private(self.directory / name, content)
        write_private(self.document, json.dumps(doc, indent=2, sort_keys=True))


_GEN_RE = re.compile(r"gen-([0-9]{1,12})")


class Generations:
    """Whole identity sets under ``root`` as ``gen-<n>/``, with ``current`` a symlink to
    one. A new set is written in full before ``current`` points at it, so a crash during
    a renewal leaves the previous, matching set in use."""

    CURRENT = "current"

    def __init__(self, root: Path) -> None:
        self.root = root

    def current(self) -> Path | None:
        link = self.root / self.CURRENT
        if not link.is_symlink():
            return None
        ensure_private_dir(self.root)
        return self.root / os.readlink(link)

    def _numbers(self) -> list[int]:
        return sorted(
            int(m.group(1)) for p in self.root.iterdir() if (m := _GEN_RE.fullmatch(p.name))
        )

    def fresh(self) -> Path:
        """An empty private directory for the next generation."""
        ensure_private_dir(self.root)
        numbers = self._numbers()
        directory = self.root / f"gen-{(numbers[-1] + 1) if numbers else 1}"
        if directory.exists():
            shutil.rmtree(directory)
        return ensure_private_dir(directory)

    def switch(self, directory: Path) -> None:
        """Point ``current`` at ``directory`` (atomically) and drop the sets before it."""
        link = self.root / f".{self.CURRENT}.{directory.name}"
        link.unlink(missing_ok=True)
        link.symlink_to(directory.name)
        os.replace(link, self.root / self.CURRENT)
        for number in self._numbers():
            if f"gen-{number}" != directory.name:
                shutil.rmtree(self.root / f"gen-{number}", ignore_errors=True)


# --- renewal ------------------------------------------------------------------------------

# The one renewal policy. Renew when this share of the remaining lifetime is left ...
LEFT_AT_RENEWAL = 1 / 3
# ... give or take this share of the wait, so a fleet joined together spreads out ...
RENEWAL_JITTER = 0.1
# ... and never sooner than this, so credentials that come back already short cannot
# turn the loop into a busy one.
MIN_WAIT = 1.0
# Retries after a failure: exponential with full jitter, short enough for the shortest
# agent identity TTL (one minute) to survive a few of them.
BACKOFF_BASE = 2.0
BACKOFF_CAP = 120.0
# Auth refusing the identity itself: removed (or never known) and locked.
STOP_ERRORS: tuple[type[MeziteError], ...] = (NotAuthenticated, AccessDenied)


class Expiring(Protocol):
    @property
    def expires(self) -> float:
        """When the credentials lapse, in seconds since the epoch."""
        ...


C = TypeVar("C", bound=Expiring)
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Stopped:
    """Why a Renewer gave up: auth refused the identity, and only an admin can help."""

    name: str
    error: MeziteError

    def __str__(self) -> str:
        return (
            f"renewal of {self.name} stopped: auth refused it ({type(self.error).__name__}: "
            f"{self.error.message}); it was removed or locked, so retrying cannot help "
            "and an admin must act"
        )


class Renewer(Generic[C]):
    """Keeps one identity's credentials fresh until auth refuses it.

    ``renew(current)`` asks auth for new credentials and keeps them (on disk) before it
    returns them; ``adopt(fresh)`` puts them into use in place. Both are the kind's;
    the timing, the retries and the stop rule are the same for every kind."""

    def __init__(
        self,
        name: str,
        current: C,
        *,
        renew: Callable[[C], Awaitable[C]],
        adopt: Callable[[C], Awaitable[None]],
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self.current = current
        self._renew = renew
        self._adopt = adopt
        self._clock = clock
        self._sleep = sleep
        self._backoff = Backoff(base=BACKOFF_BASE, cap=BACKOFF_CAP)
        self._soon = asyncio.Event()

    def renew_soon(self) -> None:
        """Renew now instead of at the usual time: what the credentials should say has
        changed (a node's addresses)."""
        self._soon.set()

    async def _wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when ``renew_soon`` is called."""
        if not self._soon.is_set():
            naps = [asyncio.ensure_future(self._sleep(seconds)), asyncio.ensure_future(
                self._soon.wait())]  # fmt: skip
            try:
                await asyncio.wait(naps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for nap in naps:
                    nap.cancel()
                await asyncio.gather(*naps, return_exceptions=True)
        self._soon.clear()

    def wait_before_renewal(self) -> float:
        """Seconds from now until a third of the remaining lifetime is left, jittered."""
        remaining = self.current.expires - self._clock.now()
        return jittered(max(remaining * (1 - LEFT_AT_RENEWAL), MIN_WAIT), RENEWAL_JITTER)

    async def run(self) -> Stopped:
        """Renew until auth refuses the identity; returns why (logged here, once).
        Every other failure is retried with backoff, forever: auth may come back."""
        wait = self.wait_before_renewal()
        while True:
            await self._wait(wait)
            try:
                fresh = await self._renew(self.current)
            except STOP_ERRORS as err:
                stopped = Stopped(self.name, err)
                log.error("%s", stopped)
                return stopped
            except Exception as exc:  # anything else may pass: retry
                wait = self._retry_wait("renewing", exc)
                continue
            # Kept already: from now on these are the credentials auth knows us by.
            self.current = fresh
            try:
                await self._adopt(fresh)
            except Exception as exc:  # the next renewal brings another set
                wait = self._retry_wait("putting the renewed credentials in use for", exc)
                continue
            self._backoff.reset()
            log.info("renewed %s (valid until %s)", self.name, _stamp(fresh.expires))
            wait = self.wait_before_renewal()

    def _retry_wait(self, doing: str, exc: Exception) -> float:
        wait = max(self._backoff.next(), MIN_WAIT)
        log.warning("%s %s failed (%s); retrying in %.0fs", doing, self.name, exc, wait)
        return wait


def _stamp(when: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
