"""Server configuration, resolved in one place into a frozen, validated object.

``resolve_config`` is the only code that reads configuration. It layers, lowest first:

    defaults  <  TOML file  <  MEZITE_* environment variables  <  flags

Every setting is one row of ``_SETTINGS``: its dotted key (``auth.session_ttl``), how
to parse it and its default. The TOML key, the environment variable
(``MEZITE_AUTH_SESSION_TTL``) and the flag key all come from that row. A TOML file looks
like::

    data_dir = "/var/lib/mezite"
    cluster_name = "example.com"
    roles = ["auth", "proxy"]

    [auth]
    listen_addr = "0.0.0.0:3025"
    session_ttl = "12h"

    [proxy]
    cert_file = "tls/proxy.crt"      # relative paths in a file are relative to the file
    key_file = "tls/proxy.key"

    [backend]
    type = "sqlite"

Every problem is a ``BadParameter`` that names the setting and where its value came
from: the file (and key), the environment variable, or the flag.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
import socket
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from proto.addr import ANY_HOST, HostPort, is_dns_name
from proto.durations import format_duration, parse_duration_text
from proto.errors import BadParameter
from proto.locks import LOCKING_MODES

__all__ = [
    "AuthConfig",
    "BackendConfig",
    "BackendType",
    "HostPort",
    "ProxyConfig",
    "ServerConfig",
    "config_file_from_env",
    "env_var_name",
    "parse_duration",
    "resolve_config",
    "setting_keys",
]

T = TypeVar("T")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR
MAX_DURATION = 365 * DAY

DEFAULT_AUTH_PORT = 3025
DEFAULT_WEB_PORT = 3080
DEFAULT_SSH_PORT = 3023


ENV_PREFIX = "MEZITE_"
CONFIG_FILE_ENV = "MEZITE_CONFIG"

ROLES = frozenset({"auth", "proxy"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
BackendType = Literal["sqlite", "postgres"]
BACKEND_TYPES: tuple[BackendType, ...] = ("sqlite", "postgres")
JOIN_METHODS = ("token", "iam")


# --- durations -----------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in ``text``: "90s", "30m", "12h", "1h30m", "2d" or plain integer seconds.
    Zero is allowed; negative, empty, malformed and over-365-day values are not."""
    return float(parse_duration_text(text))


_format_duration = format_duration


# --- the configuration objects ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthConfig:
    listen_addr: HostPort
    tls_names: tuple[str, ...]  # DNS names and IP literals on the auth server certificate
    session_ttl: float  # seconds
    lockout_attempts: int
    lockout_window: float  # seconds
    lockout_duration: float  # seconds
    invite_ttl: float  # seconds
    rate_limit_per_minute: int  # unauthenticated RPCs per peer address
    diag_addr: HostPort | None
    # What nodes and proxies do when they have heard nothing from auth for longer than
    # lock_max_staleness: keep enforcing the locks they know ("best_effort") or refuse
    # everyone ("strict").
    locking_mode: str = "best_effort"
    lock_max_staleness: float = 300.0  # seconds
    # A connection's TLS handshake and first call must be done this many seconds after
    # it was accepted; at most max_handshakes_per_address such connections per address.
    handshake_timeout: float = 10.0
    max_handshakes_per_address: int = 64
    # Where IAM joins' signed requests go instead of the AWS STS host they are signed for
    # (the Host header is kept): a VPC endpoint, or a test peer. None: that host itself.
    sts_endpoint_override: str | None = None
    # The SPIFFE trust domain (default: the cluster name), fixed at the first start.
    spiffe_trust_domain: str | None = None
    # The longest SSH certificate AuthenticateSPIFFE issues (also: the role's, the SVID's).
    spiffe_cert_ttl: float = 3600.0


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    web_listen_addr: HostPort
    ssh_listen_addr: HostPort
    public_addr: str | None
    cert_file: Path | None  # cert_file and key_file: both or neither
    key_file: Path | None
    name: str  # a proxy-only node's name in the cluster
    # Networks whose addresses the SSH hop dials when a node claims one; any other node
    # is dialled on the address auth saw it connect from (server/proxy/node_dial.py).
    node_dial_allow: tuple[IPNetwork, ...] = ()
    diag_listen_addr: HostPort | None = None  # Prometheus metrics, plain HTTP (not 3080)
    request_head_timeout: float = 10.0  # seconds for the TLS handshake, then for each head
    request_body_timeout: float = 30.0  # seconds from a request's head to its body's end
    web_idle_timeout: float = 1800.0  # seconds a browser terminal may sit without traffic
    max_connections_per_address: int = 128  # open web connections per client address


@dataclass(frozen=True, slots=True)
class BackendConfig:
    type: BackendType
    path: Path | None  # the sqlite file; None for postgres
    dsn: str | None = field(default=None, repr=False)  # may hold a password


@dataclass(frozen=True, slots=True)
class ServerConfig:
    data_dir: Path
    cluster_name: str
    roles: frozenset[str]
    log_level: str
    auth: AuthConfig
    proxy: ProxyConfig
    # Where a proxy-only node finds auth: one server or several, tried in order.
    auth_server: tuple[HostPort, ...] | None
    backend: BackendConfig
    ca_pin: str | None = None  # a proxy-only node checks the cluster by this pin at join
    join_token: str | None = field(default=None, repr=False)  # spent at a proxy's first start
    join_method: str = "token"  # or "iam": join_token names an iam token
    aws_region: str | None = None  # for an iam join (default: botocore's, or the instance's)


# --- value parsers ---------------------------------------------------------------------
#
# A parser turns one raw value into the setting's typed value, or raises BadParameter
# saying what is wrong (without saying where: the caller adds that). ``text`` is true for
# environment variables and string flags: then lists are comma separated and numbers are
# written out. TOML values (and non-string flags) arrive typed and must have the right
# type: ``roles = "auth"`` is an error, not a one-element list.

_Parser = Callable[[object, bool], object]


def _show(value: object) -> str:
    if isinstance(value, str | int | float | bool | list):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            pass
    return repr(value)


def _type_name(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    names |= {dict: "table"}
    return names.get(type(value), type(value).__name__)


def _wrong_type(expected: str, value: object, *, show: bool = True) -> BadParameter:
    got = f"{_type_name(value)} {_show(value)}" if show else _type_name(value)
    return BadParameter(f"expected {expected}, got {got}")


def _text(value: object, expected: str) -> str:
    if not isinstance(value, str):
        raise _wrong_type(expected, value)
    return value.strip()


def _path(value: object, text: bool) -> Path:
    raw = str(Path(value)) if isinstance(value, PathLike) else _text(value, "a path string")
    if not raw:
        raise BadParameter("empty path")
    return Path(raw).expanduser()


def _hostport(default_port: int | None) -> _Parser:
    def parse(value: object, text: bool) -> HostPort:
        if isinstance(value, HostPort):
            return value
        return HostPort.parse(_text(value, 'an address string "host:port"'), default_port)

    return parse


def _hostports(default_port: int) -> _Parser:
    """``a:3025,b:3025`` (or a TOML list of such strings) as the addresses in order."""

    def parse(value: object, text: bool) -> tuple[HostPort, ...]:
        from proto.addr import parse_addr_list

        if isinstance(value, tuple) and all(isinstance(v, HostPort) for v in value):
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            value = ",".join(value)
        return tuple(parse_addr_list(_text(value, 'addresses "host:port[,host:port]"'),
                                     default_port))  # fmt: skip

    return parse


def _public_addr(value: object, text: bool) -> str:
    s = _text(value, 'an address string "host[:port]"')
    HostPort.parse(s, 443)  # validate only: kept as written
    return s


def _base_url(value: object, text: bool) -> str:
    """``https://host[:port]`` or ``http://host:port``: a base URL, nothing after the
    authority (the path is the request's)."""
    from urllib.parse import urlsplit

    raw = _text(value, 'a URL such as "https://sts.example.internal"')
    try:
        url = urlsplit(raw)
        url.port  # noqa: B018 - validates the port
    except ValueError:
        raise BadParameter(f"invalid URL {raw[:80]!r}") from None
    if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
        raise BadParameter(
            f"invalid URL {raw[:80]!r}: use http(s)://HOST[:PORT] with no path, query or user"
        )
    if url.query or url.fragment or url.username:
        raise BadParameter(f"invalid URL {raw[:80]!r}: no query, fragment or user")
    return raw.rstrip("/")


def _duration(low: float, high: float) -> _Parser:
    def parse(value: object, text: bool) -> float:
        if isinstance(value, str):
            seconds = parse_duration(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value) or value < 0:
                raise BadParameter(f"invalid duration {value!r}: must be >= 0 seconds")
            if value > MAX_DURATION:
                raise BadParameter(f"duration {value!r} is too long: the limit is 365d")
            seconds = float(value)
        else:
            raise _wrong_type('a duration such as "30m" or a number of seconds', value)
        if not low <= seconds <= high:
            raise BadParameter(
                f"{_format_duration(seconds)} is out of range: "
                f"must be between {_format_duration(low)} and {_format_duration(high)}"
            )
        return seconds

    return parse


def _integer(low: int, high: int) -> _Parser:
    def parse(value: object, text: bool) -> int:
        if text and isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,18}", value.strip()):
            number = int(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise _wrong_type("an integer", value)
        if not low <= number <= high:
            raise BadParameter(f"{number} is out of range: must be between {low} and {high}")
        return number

    return parse


def _string_items(value: object, text: bool, example: str) -> list[str]:
    expected = f"an array of strings such as {example}"
    if text and isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if not all(isinstance(item, str) for item in items):
            raise _wrong_type(expected, value)
    else:
        raise _wrong_type(expected, value)
    return [item.strip() for item in items if item.strip()]


def _roles(value: object, text: bool) -> frozenset[str]:
    roles = [r.lower() for r in _string_items(value, text, '["auth", "proxy"]')]
    if not roles:
        raise BadParameter('no roles: give "auth", "proxy" or both')
    unknown = sorted(set(roles) - ROLES)
    if unknown:
        raise BadParameter(f'unknown role {_show(unknown[0])}: roles are "auth" and "proxy"')
    return frozenset(roles)


def _tls_name(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not is_dns_name(text):
        raise BadParameter(f"{_show(text)} is not a DNS name or IP address")
    return text.lower().removesuffix(".")


def _tls_names(value: object, text: bool) -> tuple[str, ...]:
    names = [_tls_name(n) for n in _string_items(value, text, '["auth.example.com"]')]
    if not names:
        raise BadParameter("no TLS names: give at least one DNS name or IP address")
    return tuple(dict.fromkeys(names))


def _networks(value: object, text: bool) -> tuple[IPNetwork, ...]:
    nets = []
    for item in _string_items(value, text, '["10.0.0.0/8", "fd00::/8"]'):
        try:
            nets.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise BadParameter(
                f"{_show(item)} is not a network: {exc}",
                hint='write a network as "10.0.0.0/8" or a single address as "10.0.0.5/32"',
            ) from None
    return tuple(dict.fromkeys(nets))


def _choice(options: Iterable[str], *, upper: bool = False) -> _Parser:
    allowed = tuple(options)

    def parse(value: object, text: bool) -> str:
        s = _text(value, "a string")
        s = s.upper() if upper else s.lower()
        if s not in allowed:
            listed = ", ".join(_show(o) for o in allowed)
            raise BadParameter(f"invalid value {_show(value)}: must be one of {listed}")
        return s

    return parse


_CLUSTER_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")


def _dns_label(what: str) -> _Parser:
    """A cluster or agent name: what DNS and certificates accept."""

    def parse(value: object, text: bool) -> str:
        s = _text(value, "a string")
        if not _CLUSTER_NAME.fullmatch(s):
            raise BadParameter(
                f"invalid {what} {_show(s)}: use 1-63 characters of a-z, 0-9, '.' and '-', "
                "starting with a letter or digit"
            )
        return s

    return parse


def _ca_pin(value: object, text: bool) -> str:
    from proto.trust import parse_pin

    return parse_pin(_text(value, 'a pin string "sha256:<hex>"'))


def _join_token(value: object, text: bool) -> str:
    # Never echo the value: it is a secret until it is spent.
    if not isinstance(value, str):
        raise _wrong_type("a join token string", value, show=False)
    token = value.strip()
    if not token or len(token) > 256 or not token.isascii() or not token.isprintable():
        raise BadParameter("malformed join token; use the one `mezctl tokens add` printed")
    return token


def _dsn(value: object, text: bool) -> str:
    # Never echo the value: it may hold a password.
    if not isinstance(value, str):
        raise _wrong_type("a connection string", value, show=False)
    if not value.strip():
        raise BadParameter("empty connection string")
    return value.strip()


# --- defaults that depend on the machine -------------------------------------------------


def default_data_dir() -> Path:
    import platformdirs  # lazily: only needed when no data_dir is given

    return Path(platformdirs.user_data_dir("mezite"))


def _default_host_name() -> str:
    """The host name, lowercased and made valid (so a host called "My_Laptop" works)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", socket.gethostname().lower())
    name = name.lstrip(".-")[:63].rstrip(".-")
    return name or "mezite"


def _default_tls_names() -> tuple[str, ...]:
    host = socket.gethostname().lower()
    extra = (host,) if host and is_dns_name(host) else ()
    return tuple(dict.fromkeys(("localhost", "127.0.0.1", "::1", *extra)))


# --- the schema: one row per setting -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Setting:
    key: str  # dotted: "auth.session_ttl" is key session_ttl in the file's [auth] table
    parse: _Parser
    default: object = None
    default_factory: Callable[[], object] | None = None

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.key.replace(".", "_").upper()

    def default_value(self) -> object:
        return self.default_factory() if self.default_factory else self.default


_SETTINGS: tuple[_Setting, ...] = (
    _Setting("data_dir", _path, default_factory=default_data_dir),
    _Setting("cluster_name", _dns_label("cluster name"), default_factory=_default_host_name),
    _Setting("roles", _roles, ROLES),
    _Setting("log_level", _choice(LOG_LEVELS, upper=True), "INFO"),
    _Setting("auth_server", _hostports(DEFAULT_AUTH_PORT)),
    _Setting("ca_pin", _ca_pin),
    _Setting("join_token", _join_token),
    _Setting("join_method", _choice(JOIN_METHODS), "token"),
    _Setting("aws_region", _dns_label("AWS region")),
    _Setting(
        "auth.listen_addr", _hostport(DEFAULT_AUTH_PORT), HostPort(ANY_HOST, DEFAULT_AUTH_PORT)
    ),
    _Setting("auth.tls_names", _tls_names, default_factory=_default_tls_names),
    _Setting("auth.session_ttl", _duration(MINUTE, 30 * HOUR), 12 * HOUR),
    _Setting("auth.lockout_attempts", _integer(1, 100), 5),
    _Setting("auth.lockout_window", _duration(1, 7 * DAY), 30 * MINUTE),
    _Setting("auth.lockout_duration", _duration(1, 7 * DAY), 30 * MINUTE),
    _Setting("auth.invite_ttl", _duration(MINUTE, 7 * DAY), HOUR),
    _Setting("auth.rate_limit_per_minute", _integer(1, 100_000), 60),
    _Setting("auth.diag_addr", _hostport(None)),
    _Setting("auth.locking_mode", _choice(LOCKING_MODES), "best_effort"),
    _Setting("auth.lock_max_staleness", _duration(1, DAY), 5 * MINUTE),
    _Setting("auth.handshake_timeout", _duration(1, 10 * MINUTE), 10.0),
    _Setting("auth.max_handshakes_per_address", _integer(1, 100_000), 64),
    _Setting("auth.sts_endpoint_override", _base_url),
    _Setting("auth.spiffe_trust_domain", _dns_label("SPIFFE trust domain")),
    _Setting("auth.spiffe_cert_ttl", _duration(MINUTE, 30 * HOUR), HOUR),
    _Setting(
        "proxy.web_listen_addr", _hostport(DEFAULT_WEB_PORT), HostPort(ANY_HOST, DEFAULT_WEB_PORT)
    ),
    _Setting(
        "proxy.ssh_listen_addr", _hostport(DEFAULT_SSH_PORT), HostPort(ANY_HOST, DEFAULT_SSH_PORT)
    ),
    _Setting("proxy.public_addr", _public_addr),
    _Setting("proxy.cert_file", _path),
    _Setting("proxy.key_file", _path),
    _Setting("proxy.name", _dns_label("proxy name"), default_factory=_default_host_name),
    _Setting("proxy.node_dial_allow", _networks, ()),
    _Setting("proxy.diag_listen_addr", _hostport(None)),
    _Setting("proxy.request_head_timeout", _duration(1, 10 * MINUTE), 10.0),
    _Setting("proxy.request_body_timeout", _duration(1, HOUR), 30.0),
    _Setting("proxy.web_idle_timeout", _duration(1, 24 * HOUR), 1800.0),
    _Setting("proxy.max_connections_per_address", _integer(1, 100_000), 128),
    _Setting("backend.type", _choice(BACKEND_TYPES), "sqlite"),
    _Setting("backend.path", _path),  # None here; data_dir/backend.sqlite for sqlite
    _Setting("backend.dsn", _dsn),
)


def _schema() -> dict[str, _Setting]:
    return {s.key: s for s in _SETTINGS}


def setting_keys() -> tuple[str, ...]:
    """Every dotted setting key, in schema order (the TOML keys and the flag keys)."""
    return tuple(s.key for s in _SETTINGS)


def env_var_name(key: str) -> str:
    """The environment variable for a dotted setting key, e.g. MEZITE_AUTH_SESSION_TTL."""
    try:
        return _schema()[key].env_var
    except KeyError:
        raise ValueError(f"unknown config setting {key!r}") from None


# --- resolution ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Origin:
    label: str  # prefixes an error about this one value: "mezite.toml: auth.session_ttl"
    source: str  # says where a value came from: "set in mezite.toml"


class _Layers:
    """The merged values so far, and where each came from."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.origins: dict[str, _Origin] = {}

    def set(self, setting: _Setting, raw: object, text: bool, origin: _Origin) -> object:
        try:
            value = setting.parse(raw, text)
        except BadParameter as err:
            raise BadParameter(f"{origin.label}: {err.message}", hint=err.hint) from None
        self.values[setting.key] = value
        self.origins[setting.key] = origin
        return value

    def get(self, key: str, kind: type[T]) -> T:
        value = self.values[key]
        assert isinstance(value, kind), (key, value)
        return value

    def optional(self, key: str, kind: type[T]) -> T | None:
        value = self.values[key]
        assert value is None or isinstance(value, kind), (key, value)
        return value

    def source(self, key: str) -> str:
        return self.origins[key].source


def config_file_from_env(env: Mapping[str, str]) -> Path | None:
    """The config file named by MEZITE_CONFIG, if it is set and not empty."""
    value = env.get(CONFIG_FILE_ENV, "").strip()
    return Path(value).expanduser() if value else None


def resolve_config(
    *, config_file: Path | None, env: Mapping[str, str], flags: Mapping[str, object]
) -> ServerConfig:
    """Resolve defaults < ``config_file`` < MEZITE_* in ``env`` < ``flags`` into one
    validated ServerConfig. ``flags`` uses the dotted keys of the file (``"auth.listen_addr"``);
    a value of None means "not given"; a key outside the schema is a ValueError."""
    schema = _schema()
    unknown_flags = sorted(set(flags) - set(schema))
    if unknown_flags:
        raise ValueError(f"unknown config flag key {unknown_flags[0]!r}")

    layers = _Layers()
    if config_file is not None:
        _apply_file(layers, schema, config_file)
    for setting in _SETTINGS:
        raw = env.get(setting.env_var)
        if raw is not None and raw.strip():  # an empty variable counts as unset
            origin = _Origin(setting.env_var, f"set by {setting.env_var}")
            layers.set(setting, raw, True, origin)
    for key, value in flags.items():
        if value is not None:
            origin = _Origin(f"flag {key}", f"set by flag {key}")
            layers.set(schema[key], value, isinstance(value, str), origin)
    for setting in _SETTINGS:
        if setting.key not in layers.values:
            layers.values[setting.key] = setting.default_value()
            layers.origins[setting.key] = _Origin(f"default {setting.key}", "default")
    config = _build(layers)
    _check(config, layers)
    return config


def _apply_file(layers: _Layers, schema: Mapping[str, _Setting], path: Path) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadParameter(
            f"{path}: config file not found", hint=f"check the path, or unset {CONFIG_FILE_ENV}"
        ) from None
    except OSError as err:
        raise BadParameter(f"{path}: cannot read config file: {err.strerror}") from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadParameter(f"{path}: config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise BadParameter(f"{path}: invalid TOML: {err}") from None

    sections = {key.split(".")[0] for key in schema if "." in key}
    for name, value in document.items():
        if name in sections:
            if not isinstance(value, dict):
                raise BadParameter(
                    f"{path}: {name}: expected a table [{name}], got {_type_name(value)}"
                )
            entries = [(f"{name}.{sub}", sub_value) for sub, sub_value in value.items()]
        else:
            entries = [(name, value)]
        for key, raw in entries:
            setting = schema.get(key)
            if setting is None:
                raise BadParameter(
                    f"{path}: unknown key {_show(key)}", hint=_key_hint(key, schema, sections)
                )
            parsed = layers.set(setting, raw, False, _Origin(f"{path}: {key}", f"set in {path}"))
            if isinstance(parsed, Path) and not parsed.is_absolute():
                layers.values[key] = path.parent / parsed


def _key_hint(key: str, schema: Mapping[str, _Setting], sections: set[str]) -> str:
    """Suggest the setting whose own name (the part after the dot) is closest, preferring
    one in the same table: "auth.listen_adr" -> "auth.listen_addr", and a misplaced
    "session_ttl" -> "auth.session_ttl"."""
    section, _, name = key.rpartition(".")
    by_name = {k.rpartition(".")[2]: _show(k) for k in schema}  # the names are unique
    if not section:
        by_name |= {s: f"[{s}]" for s in sections}
    close = [by_name[n] for n in difflib.get_close_matches(name, by_name, n=3, cutoff=0.6)]
    if close:
        same_table = [k for k in close if k.startswith(f'"{section}.')] if section else []
        return f"did you mean {(same_table or close)[0]}?"
    if section in sections:
        known = [k.split(".", 1)[1] for k in schema if k.startswith(section + ".")]
        return f"keys in [{section}]: " + ", ".join(known)
    top = [k for k in schema if "." not in k] + [f"[{s}]" for s in sorted(sections)]
    return "top-level keys: " + ", ".join(top)


def _build(layers: _Layers) -> ServerConfig:
    data_dir = layers.get("data_dir", Path)
    backend_type = cast(BackendType, layers.get("backend.type", str))
    backend_path = layers.optional("backend.path", Path)
    if backend_type == "sqlite" and backend_path is None:
        backend_path = data_dir / "backend.sqlite"
    roles: frozenset[Any] = layers.get("roles", frozenset)
    tls_names: tuple[Any, ...] = layers.get("auth.tls_names", tuple)
    return ServerConfig(
        data_dir=data_dir,
        cluster_name=layers.get("cluster_name", str),
        roles=roles,
        log_level=layers.get("log_level", str),
        auth=AuthConfig(
            listen_addr=layers.get("auth.listen_addr", HostPort),
            tls_names=tls_names,
            session_ttl=layers.get("auth.session_ttl", float),
            lockout_attempts=layers.get("auth.lockout_attempts", int),
            lockout_window=layers.get("auth.lockout_window", float),
            lockout_duration=layers.get("auth.lockout_duration", float),
            invite_ttl=layers.get("auth.invite_ttl", float),
            rate_limit_per_minute=layers.get("auth.rate_limit_per_minute", int),
            diag_addr=layers.optional("auth.diag_addr", HostPort),
            locking_mode=layers.get("auth.locking_mode", str),
            lock_max_staleness=layers.get("auth.lock_max_staleness", float),
            handshake_timeout=layers.get("auth.handshake_timeout", float),
            max_handshakes_per_address=layers.get("auth.max_handshakes_per_address", int),
            sts_endpoint_override=layers.optional("auth.sts_endpoint_override", str),
            spiffe_trust_domain=layers.optional("auth.spiffe_trust_domain", str),
            spiffe_cert_ttl=layers.get("auth.spiffe_cert_ttl", float),
        ),
        proxy=ProxyConfig(
            web_listen_addr=layers.get("proxy.web_listen_addr", HostPort),
            ssh_listen_addr=layers.get("proxy.ssh_listen_addr", HostPort),
            public_addr=layers.optional("proxy.public_addr", str),
            cert_file=layers.optional("proxy.cert_file", Path),
            key_file=layers.optional("proxy.key_file", Path),
            name=layers.get("proxy.name", str),
            node_dial_allow=layers.get("proxy.node_dial_allow", tuple),
            diag_listen_addr=layers.optional("proxy.diag_listen_addr", HostPort),
            request_head_timeout=layers.get("proxy.request_head_timeout", float),
            request_body_timeout=layers.get("proxy.request_body_timeout", float),
            web_idle_timeout=layers.get("proxy.web_idle_timeout", float),
            max_connections_per_address=layers.get("proxy.max_connections_per_address", int),
        ),
        auth_server=layers.optional("auth_server", tuple),
        backend=BackendConfig(
            type=backend_type, path=backend_path, dsn=layers.optional("backend.dsn", str)
        ),
        ca_pin=layers.optional("ca_pin", str),
        join_token=layers.optional("join_token", str),
        join_method=layers.get("join_method", str),
        aws_region=layers.optional("aws_region", str),
    )


def _check(config: ServerConfig, layers: _Layers) -> None:
    """Rules that involve more than one setting; each error says where values came from."""
    src = layers.source
    if config.roles == {"proxy"} and config.auth_server is None:
        raise BadParameter(
            f'a proxy-only node (roles = ["proxy"], {src("roles")}) needs auth_server',
            hint=f"set auth_server (or {env_var_name('auth_server')}) to the auth server's "
            "host:port",
        )
    if "auth" in config.roles and config.auth_server is not None:
        raise BadParameter(
            f"auth_server ({src('auth_server')}) is only for a proxy-only node, "
            f"but this node runs auth (roles {src('roles')})",
            hint='unset auth_server, or set roles = ["proxy"]',
        )
    for key in ("ca_pin", "join_token"):
        if "auth" in config.roles and getattr(config, key) is not None:
            raise BadParameter(
                f"{key} ({src(key)}) is only for a proxy-only node joining a cluster, "
                f"but this node runs auth (roles {src('roles')})",
                hint=f'unset {key}, or set roles = ["proxy"]',
            )

    proxy = config.proxy
    if (proxy.cert_file is None) != (proxy.key_file is None):
        given, missing = (
            ("cert_file", "key_file") if proxy.key_file is None else ("key_file", "cert_file")
        )
        raise BadParameter(
            f"proxy.{given} is set ({src('proxy.' + given)}) but proxy.{missing} is not: "
            "give both or neither"
        )
    for name in ("cert_file", "key_file"):
        path = getattr(proxy, name)
        if path is not None and not path.is_file():
            raise BadParameter(
                f"proxy.{name} {_show(str(path))} ({src('proxy.' + name)}) "
                "does not exist or is not a file"
            )

    backend = config.backend
    if backend.type == "postgres" and backend.dsn is None:
        raise BadParameter(
            f"backend.type postgres ({src('backend.type')}) needs backend.dsn",
            hint=f"set backend.dsn (or {env_var_name('backend.dsn')}) to the connection string",
        )
    if backend.type == "sqlite" and backend.dsn is not None:
        raise BadParameter(
            f"backend.dsn is set ({src('backend.dsn')}) but backend.type is sqlite "
            f"({src('backend.type')})",
            hint='set backend.type = "postgres", or unset backend.dsn',
        )
    if backend.type == "postgres" and backend.path is not None:
        raise BadParameter(
            f"backend.path ({src('backend.path')}) is only for sqlite, "
            f"but backend.type is postgres ({src('backend.type')})"
        )
