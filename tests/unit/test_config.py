"""server.config: one resolution path from defaults, file, environment and flags."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from pathlib import Path

import pytest

from proto.errors import BadParameter
from server.config import (
    HostPort,
    ServerConfig,
    config_file_from_env,
    env_var_name,
    parse_duration,
    resolve_config,
    setting_keys,
)


@pytest.fixture(autouse=True)
def fixed_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Make the machine-dependent defaults deterministic; returns the default data dir."""
    import platformdirs

    data_dir = tmp_path / "platform-data"
    monkeypatch.setattr(socket, "gethostname", lambda: "Build-Host")
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda appname: str(data_dir / appname))
    return data_dir / "mezite"


def write(tmp_path: Path, text: str, name: str = "mezite.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def resolve(
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> ServerConfig:
    return resolve_config(config_file=file, env=env or {}, flags=flags or {})


def bad(
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> BadParameter:
    with pytest.raises(BadParameter) as info:
        resolve(file, env, flags)
    return info.value


# --- defaults ----------------------------------------------------------------------------


def test_defaults_are_sane(fixed_machine: Path) -> None:
    config = resolve()
    assert config.data_dir == fixed_machine
    assert config.cluster_name == "build-host"
    assert config.roles == frozenset({"auth", "proxy"})
    assert config.log_level == "INFO"
    assert config.auth_server is None
    auth = config.auth
    assert auth.listen_addr == HostPort("0.0.0.0", 3025)
    assert auth.tls_names == ("localhost", "127.0.0.1", "::1", "build-host")
    assert auth.session_ttl == 12 * 3600
    assert auth.lockout_attempts == 5
    assert auth.lockout_window == 30 * 60
    assert auth.lockout_duration == 30 * 60
    assert auth.invite_ttl == 3600
    assert auth.rate_limit_per_minute == 60
    assert auth.diag_addr is None
    proxy = config.proxy
    assert proxy.web_listen_addr == HostPort("0.0.0.0", 3080)
    assert proxy.ssh_listen_addr == HostPort("0.0.0.0", 3023)
    assert (proxy.public_addr, proxy.cert_file, proxy.key_file) == (None, None, None)
    assert config.backend.type == "sqlite"
    assert config.backend.path == fixed_machine / "backend.sqlite"
    assert config.backend.dsn is None


def test_backend_path_follows_data_dir(tmp_path: Path) -> None:
    config = resolve(flags={"data_dir": tmp_path / "d"})
    assert config.data_dir == tmp_path / "d"
    assert config.backend.path == tmp_path / "d" / "backend.sqlite"


def test_default_tls_names_are_deduplicated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "localhost")
    assert resolve().auth.tls_names == ("localhost", "127.0.0.1", "::1")


def test_default_cluster_name_is_made_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "My_Laptop")
    assert resolve().cluster_name == "my-laptop"


def test_config_is_frozen() -> None:
    config = resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cluster_name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.auth.session_ttl = 1.0  # type: ignore[misc]


# --- precedence --------------------------------------------------------------------------

# (dotted key, TOML literal, env value, flag value, getter, file result, env result, flag result)
PRECEDENCE = [
    (
        "auth.session_ttl",
        '"1h"',
        "2h",
        "3h",
        lambda c: c.auth.session_ttl,
        3600.0,
        7200.0,
        10800.0,
    ),
    (
        "auth.listen_addr",
        '"127.0.0.1:1"',
        "127.0.0.1:2",
        "127.0.0.1:0",
        lambda c: c.auth.listen_addr,
        HostPort("127.0.0.1", 1),
        HostPort("127.0.0.1", 2),
        HostPort("127.0.0.1", 0),
    ),
    (
        "auth.lockout_attempts",
        "7",
        "8",
        9,
        lambda c: c.auth.lockout_attempts,
        7,
        8,
        9,
    ),
    (
        "log_level",
        '"debug"',
        "warning",
        "ERROR",
        lambda c: c.log_level,
        "DEBUG",
        "WARNING",
        "ERROR",
    ),
    (
        "cluster_name",
        '"from-file"',
        "from-env",
        "from-flag",
        lambda c: c.cluster_name,
        "from-file",
        "from-env",
        "from-flag",
    ),
    (
        "auth.tls_names",
        '["a.example"]',
        "b.example, 10.0.0.1",
        ["c.example"],
        lambda c: c.auth.tls_names,
        ("a.example",),
        ("b.example", "10.0.0.1"),
        ("c.example",),
    ),
    (
        "proxy.public_addr",
        '"file.example:443"',
        "env.example",
        "flag.example:8443",
        lambda c: c.proxy.public_addr,
        "file.example:443",
        "env.example",
        "flag.example:8443",
    ),
]


def toml_line(key: str, literal: str) -> str:
    section, _, name = key.rpartition(".")
    return f"[{section}]\n{name} = {literal}\n" if section else f"{name} = {literal}\n"


@pytest.mark.parametrize(
    ("key", "literal", "env_value", "flag_value", "get", "from_file", "from_env", "from_flag"),
    PRECEDENCE,
    ids=[row[0] for row in PRECEDENCE],
)
def test_precedence_file_then_env_then_flag(
    tmp_path: Path,
    key: str,
    literal: str,
    env_value: str,
    flag_value: object,
    get: object,
    from_file: object,
    from_env: object,
    from_flag: object,
) -> None:
    assert callable(get)
    file = write(tmp_path, toml_line(key, literal))
    env = {env_var_name(key): env_value}
    default = get(resolve())
    assert default not in (from_file, from_env, from_flag)
    assert get(resolve(file)) == from_file
    assert get(resolve(file, env)) == from_env
    assert get(resolve(None, env)) == from_env
    assert get(resolve(file, env, {key: flag_value})) == from_flag
    assert get(resolve(file, None, {key: flag_value})) == from_flag
    # A flag whose value is None was not given.
    assert get(resolve(file, env, {key: None})) == from_env
    # An empty environment variable counts as unset.
    assert get(resolve(file, {env_var_name(key): ""})) == from_file


def test_env_var_names_come_from_keys() -> None:
    assert env_var_name("data_dir") == "MEZITE_DATA_DIR"
    assert env_var_name("auth_server") == "MEZITE_AUTH_SERVER"
    assert env_var_name("auth.session_ttl") == "MEZITE_AUTH_SESSION_TTL"
    assert env_var_name("backend.dsn") == "MEZITE_BACKEND_DSN"
    names = [env_var_name(k) for k in setting_keys()]
    assert len(set(names)) == len(names)
    # Key hints rely on the names after the dot being unique too.
    leaves = [k.rpartition(".")[2] for k in setting_keys()]
    assert len(set(leaves)) == len(leaves)
    with pytest.raises(ValueError, match="nope"):
        env_var_name("nope")


def test_every_setting_can_be_given_in_a_file(tmp_path: Path) -> None:
    cert = write(tmp_path, "cert", "proxy.crt")
    key = write(tmp_path, "key", "proxy.key")
    file = write(
        tmp_path,
        f"""
        data_dir = "{tmp_path / "data"}"
        cluster_name = "example.com"
        roles = ["auth", "proxy"]
        log_level = "WARNING"

        [auth]
        listen_addr = "[::1]:4025"
        tls_names = ["auth.example.com", "192.0.2.1", "AUTH.example.com"]
        session_ttl = "1h30m"
        lockout_attempts = 3
        lockout_window = 600
        lockout_duration = "2d"
        invite_ttl = 7200.0
        rate_limit_per_minute = 100000
        diag_addr = "127.0.0.1:9090"

        [proxy]
        web_listen_addr = ":443"
        ssh_listen_addr = "10.1.2.3"
        public_addr = "mezite.example.com"
        cert_file = "{cert}"
        key_file = "{key}"

        [backend]
        type = "sqlite"
        path = "{tmp_path / "db.sqlite"}"
        """.replace("\n        ", "\n"),
    )
    config = resolve(file)
    assert config.data_dir == tmp_path / "data"
    assert config.cluster_name == "example.com"
    assert config.log_level == "WARNING"
    assert config.auth.listen_addr == HostPort("::1", 4025)
    assert config.auth.tls_names == ("auth.example.com", "192.0.2.1")
    assert config.auth.session_ttl == 5400
    assert config.auth.lockout_attempts == 3
    assert config.auth.lockout_window == 600
    assert config.auth.lockout_duration == 2 * 86400
    assert config.auth.invite_ttl == 7200
    assert config.auth.rate_limit_per_minute == 100000
    assert config.auth.diag_addr == HostPort("127.0.0.1", 9090)
    assert config.proxy.web_listen_addr == HostPort("0.0.0.0", 443)
    assert config.proxy.ssh_listen_addr == HostPort("10.1.2.3", 3023)
    assert config.proxy.public_addr == "mezite.example.com"
    assert (config.proxy.cert_file, config.proxy.key_file) == (cert, key)
    assert config.backend.path == tmp_path / "db.sqlite"


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "etc" / "tls").mkdir(parents=True)
    write(tmp_path / "etc" / "tls", "c", "proxy.crt")
    write(tmp_path / "etc" / "tls", "k", "proxy.key")
    file = write(
        tmp_path / "etc",
        'data_dir = "data"\n[proxy]\ncert_file = "tls/proxy.crt"\nkey_file = "tls/proxy.key"\n',
    )
    config = resolve(file)
    assert config.data_dir == tmp_path / "etc" / "data"
    assert config.proxy.cert_file == tmp_path / "etc" / "tls" / "proxy.crt"


def test_roles_from_each_layer(tmp_path: Path) -> None:
    file = write(tmp_path, 'roles = ["auth"]\n')
    assert resolve(file).roles == {"auth"}
    assert resolve(file, {"MEZITE_ROLES": "auth, proxy"}).roles == {"auth", "proxy"}
    flags = {"roles": "proxy", "auth_server": "auth.example.com"}
    config = resolve(file, {"MEZITE_ROLES": "auth,proxy"}, flags)
    assert config.roles == {"proxy"}
    assert config.auth_server == (HostPort("auth.example.com", 3025),)
    assert resolve(flags={"roles": ["AUTH"]}).roles == {"auth"}


# --- the file ------------------------------------------------------------------------------


def test_unknown_key_names_file_and_key_with_hint(tmp_path: Path) -> None:
    file = write(tmp_path, '[auth]\nlisten_adr = "127.0.0.1:3025"\n')
    err = bad(file)
    assert err.message == f'{file}: unknown key "auth.listen_adr"'
    assert err.hint is not None
    assert '"auth.listen_addr"' in err.hint
    assert "did you mean" in err.hint


def test_unknown_top_level_key_and_table(tmp_path: Path) -> None:
    err = bad(write(tmp_path, 'clustr_name = "x"\n'))
    assert 'unknown key "clustr_name"' in err.message
    assert err.hint is not None and '"cluster_name"' in err.hint

    err = bad(write(tmp_path, "[proxyy]\npublic_addr = 'x'\n"))
    assert str(tmp_path / "mezite.toml") in err.message
    assert 'unknown key "proxyy"' in err.message
    assert err.hint == "did you mean [proxy]?"


def test_misplaced_key_hint_names_its_table(tmp_path: Path) -> None:
    err = bad(write(tmp_path, 'session_ttl = "1h"\n'))
    assert 'unknown key "session_ttl"' in err.message
    assert err.hint == 'did you mean "auth.session_ttl"?'
    # Within a table, a close name in the same table wins over one elsewhere.
    err = bad(write(tmp_path, '[proxy]\nlisten_addr = ":0"\n'))
    assert err.hint == 'did you mean "proxy.web_listen_addr"?'


def test_unknown_key_without_close_match_lists_the_section(tmp_path: Path) -> None:
    err = bad(write(tmp_path, "[backend]\nzzzzzz = 1\n"))
    assert 'unknown key "backend.zzzzzz"' in err.message
    assert err.hint is not None
    assert "dsn" in err.hint and "type" in err.hint


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('roles = "auth"\n', "roles", "array"),
        ("roles = [1]\n", "roles", "array"),
        ('[auth]\nlockout_attempts = "5"\n', "auth.lockout_attempts", "integer"),
        ("[auth]\nlockout_attempts = 5.0\n", "auth.lockout_attempts", "integer"),
        ("[auth]\nsession_ttl = true\n", "auth.session_ttl", "duration"),
        ("[auth]\nlisten_addr = 3025\n", "auth.listen_addr", "address"),
        ("data_dir = 5\n", "data_dir", "path"),
        ("auth = 5\n", "auth", "table"),
        ("[data_dir]\nx = 1\n", "data_dir", "table"),
        ('[backend]\ntype = "mysql"\n', "backend.type", "postgres"),
    ],
)
def test_wrong_type_in_file_names_file_and_key(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    file = write(tmp_path, text)
    err = bad(file)
    assert err.message.startswith(f"{file}: {key}: "), err.message
    assert expected in err.message


def test_bad_value_in_file_names_file_and_key(tmp_path: Path) -> None:
    file = write(tmp_path, '[auth]\nsession_ttl = "12 hours"\n')
    err = bad(file)
    assert err.message.startswith(f"{file}: auth.session_ttl: ")
    assert '"12 hours"' in err.message


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    file = write(tmp_path, "roles = [auth\n")
    err = bad(file)
    assert err.message.startswith(f"{file}: invalid TOML")


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    err = bad(missing)
    assert str(missing) in err.message
    assert "not found" in err.message


def test_file_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    err = bad(tmp_path)
    assert str(tmp_path) in err.message


def test_config_file_from_env(tmp_path: Path) -> None:
    assert config_file_from_env({}) is None
    assert config_file_from_env({"MEZITE_CONFIG": ""}) is None
    assert config_file_from_env({"MEZITE_CONFIG": str(tmp_path / "m.toml")}) == (
        tmp_path / "m.toml"
    )


# --- environment and flags -----------------------------------------------------------------


def test_unknown_mezite_variables_are_ignored() -> None:
    env = {
        "MEZITE_HOME": "/somewhere",
        "MEZITE_CONFIG": "/nonexistent/mezite.toml",
        "MEZITE_AUTH_SESION_TTL": "garbage",
        "HOME": "/root",
    }
    assert resolve(None, env) == resolve()


@pytest.mark.parametrize(
    ("var", "value", "detail"),
    [
        ("MEZITE_AUTH_SESSION_TTL", "soon", '"soon"'),
        ("MEZITE_AUTH_SESSION_TTL", "30s", "between 1m and 30h"),
        ("MEZITE_AUTH_SESSION_TTL", "31h", "between 1m and 30h"),
        ("MEZITE_AUTH_LOCKOUT_ATTEMPTS", "0", "between 1 and 100"),
        ("MEZITE_AUTH_LOCKOUT_ATTEMPTS", "101", "between 1 and 100"),
        ("MEZITE_AUTH_LOCKOUT_ATTEMPTS", "five", "integer"),
        ("MEZITE_AUTH_RATE_LIMIT_PER_MINUTE", "0", "between 1 and 100000"),
        ("MEZITE_AUTH_RATE_LIMIT_PER_MINUTE", "100001", "between 1 and 100000"),
        ("MEZITE_ROLES", "auth,node", '"node"'),
        ("MEZITE_ROLES", " , ", "no roles"),
        ("MEZITE_LOG_LEVEL", "verbose", '"verbose"'),
        ("MEZITE_CLUSTER_NAME", "-bad", '"-bad"'),
        ("MEZITE_CLUSTER_NAME", "Upper", '"Upper"'),
        ("MEZITE_CLUSTER_NAME", "a" * 64, "1-63"),
        ("MEZITE_AUTH_LISTEN_ADDR", "127.0.0.1:70000", "70000"),
        ("MEZITE_AUTH_TLS_NAMES", "ok.example,bad name", '"bad name"'),
        ("MEZITE_AUTH_DIAG_ADDR", "127.0.0.1", "missing port"),
        ("MEZITE_BACKEND_TYPE", "mysql", '"mysql"'),
    ],
)
def test_bad_env_value_names_the_variable(var: str, value: str, detail: str) -> None:
    err = bad(env={var: value})
    assert err.message.startswith(f"{var}: "), err.message
    assert detail in err.message


def test_bad_flag_value_names_the_flag() -> None:
    err = bad(flags={"auth.session_ttl": "forever"})
    assert err.message.startswith("flag auth.session_ttl: ")
    assert '"forever"' in err.message
    err = bad(flags={"auth.lockout_attempts": True})
    assert err.message.startswith("flag auth.lockout_attempts: ")


def test_flags_accept_typed_values(tmp_path: Path) -> None:
    config = resolve(
        flags={
            "data_dir": tmp_path,
            "auth.listen_addr": HostPort("127.0.0.1", 0),
            "auth.session_ttl": 120,
            "auth.lockout_attempts": "3",
            "proxy.web_listen_addr": "127.0.0.1:0",
        }
    )
    assert config.data_dir == tmp_path
    assert config.auth.listen_addr == HostPort("127.0.0.1", 0)
    assert config.auth.session_ttl == 120
    assert config.auth.lockout_attempts == 3
    assert config.proxy.web_listen_addr == HostPort("127.0.0.1", 0)


def test_unknown_flag_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"auth\.listen_adr"):
        resolve(flags={"auth.listen_adr": "127.0.0.1:0"})
    with pytest.raises(ValueError, match="listen_addr"):
        resolve(flags={"listen_addr": None})


# --- rules across settings -------------------------------------------------------------------


def test_proxy_only_requires_auth_server() -> None:
    err = bad(flags={"roles": "proxy"})
    assert "auth_server" in err.message
    assert "flag roles" in err.message
    assert err.hint is not None and "MEZITE_AUTH_SERVER" in err.hint
    config = resolve(env={"MEZITE_ROLES": "proxy", "MEZITE_AUTH_SERVER": "10.0.0.5:4000"})
    assert config.auth_server == (HostPort("10.0.0.5", 4000),)


def test_auth_server_on_an_auth_node_is_an_error() -> None:
    err = bad(env={"MEZITE_AUTH_SERVER": "10.0.0.5"})
    assert "auth_server" in err.message and "MEZITE_AUTH_SERVER" in err.message


def test_cert_and_key_both_or_neither(tmp_path: Path) -> None:
    cert = write(tmp_path, "c", "proxy.crt")
    key = write(tmp_path, "k", "proxy.key")
    err = bad(env={"MEZITE_PROXY_CERT_FILE": str(cert)})
    assert "proxy.key_file" in err.message and "MEZITE_PROXY_CERT_FILE" in err.message
    err = bad(flags={"proxy.key_file": key})
    assert "proxy.cert_file" in err.message and "flag proxy.key_file" in err.message
    config = resolve(flags={"proxy.cert_file": cert, "proxy.key_file": key})
    assert (config.proxy.cert_file, config.proxy.key_file) == (cert, key)


def test_cert_files_must_exist(tmp_path: Path) -> None:
    key = write(tmp_path, "k", "proxy.key")
    file = write(tmp_path, f'[proxy]\ncert_file = "missing.crt"\nkey_file = "{key}"\n')
    err = bad(file)
    assert str(tmp_path / "missing.crt") in err.message
    assert str(file) in err.message
    assert "does not exist" in err.message


PIN = "sha256:" + "ab" * 32
TOKEN = "0123456789abcdef.secret-part-of-the-token"


def test_a_proxy_joins_with_token_pin_and_name_from_any_layer(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        f'roles = ["proxy"]\nauth_server = "auth.example.com"\nca_pin = "{PIN.upper()}"\n'
        '[proxy]\nname = "edge-1"\n',
    )
    config = resolve(file, {"MEZITE_JOIN_TOKEN": TOKEN})
    assert (config.ca_pin, config.join_token, config.proxy.name) == (PIN, TOKEN, "edge-1")
    assert "secret-part" not in repr(config)
    assert resolve(file).join_token is None
    assert resolve(flags={"roles": "auth"}).proxy.name == "build-host"  # from the host name


def test_join_settings_are_only_for_a_proxy_only_node() -> None:
    for key, value in (("ca_pin", PIN), ("join_token", TOKEN)):
        err = bad(flags={key: value})
        assert key in err.message and "runs auth" in err.message
        assert "secret-part" not in err.message + (err.hint or "")


def test_bad_join_settings_are_refused_without_echoing_the_token() -> None:
    proxy = {"roles": "proxy", "auth_server": "auth.example.com"}
    assert "invalid CA pin" in bad(flags={**proxy, "ca_pin": "sha1:abc"}).message
    err = bad(flags={**proxy, "join_token": "secret-part\n" + "x" * 300})
    assert "join_token" in err.message and "secret-part" not in err.message
    assert "proxy.name" in bad(flags={**proxy, "proxy.name": "Edge_1"}).message


DSN = "postgresql://mezite:hunter2-secret@db.example/mezite"


def test_postgres_needs_dsn() -> None:
    err = bad(env={"MEZITE_BACKEND_TYPE": "postgres"})
    assert "backend.dsn" in err.message and "MEZITE_BACKEND_TYPE" in err.message
    config = resolve(env={"MEZITE_BACKEND_TYPE": "postgres", "MEZITE_BACKEND_DSN": DSN})
    assert config.backend.type == "postgres"
    assert config.backend.dsn == DSN
    assert config.backend.path is None


def test_dsn_without_postgres_is_an_error_that_hides_the_dsn() -> None:
    err = bad(env={"MEZITE_BACKEND_DSN": DSN})
    assert "backend.type" in err.message
    assert "hunter2" not in err.message and "hunter2" not in (err.hint or "")


def test_dsn_is_never_in_repr(tmp_path: Path) -> None:
    file = write(tmp_path, f'[backend]\ntype = "postgres"\ndsn = "{DSN}"\n')
    config = resolve(file)
    assert config.backend.dsn == DSN
    assert "hunter2" not in repr(config)
    assert "hunter2" not in repr(config.backend)
    assert "hunter2" not in str(config)


def test_bad_dsn_type_does_not_echo_it(tmp_path: Path) -> None:
    err = bad(write(tmp_path, '[backend]\ntype = "postgres"\ndsn = ["hunter2"]\n'))
    assert "backend.dsn" in err.message
    assert "hunter2" not in err.message


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1d2h3m4s", 93784),
        ("0", 0),
        ("3600", 3600),
        (" 5m ", 300),
        ("12H", 43200),
        ("365d", 365 * 86400),
    ],
)
def test_parse_duration_good(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "-5s",
        "-1",
        "abc",
        "5x",
        "1.5h",
        "h",
        "1h 30m",
        "30m1h",
        "5 s",
        "366d",
        "31536001",
    ],
)
def test_parse_duration_bad(text: str) -> None:
    with pytest.raises(BadParameter) as info:
        parse_duration(text)
    assert f'"{text}"' in info.value.message


def test_durations_as_numbers_in_file(tmp_path: Path) -> None:
    config = resolve(write(tmp_path, "[auth]\nsession_ttl = 5400.5\ninvite_ttl = 600\n"))
    assert config.auth.session_ttl == 5400.5
    assert config.auth.invite_ttl == 600
    err = bad(write(tmp_path, "[auth]\nlockout_window = -5\n"))
    assert "auth.lockout_window" in err.message and "-5" in err.message


# --- HostPort --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "default", "host", "port"),
    [
        ("example.com:443", None, "example.com", 443),
        ("127.0.0.1:0", None, "127.0.0.1", 0),
        ("127.0.0.1:65535", None, "127.0.0.1", 65535),
        ("[::1]:3025", None, "::1", 3025),
        ("[fe80::1%eth0]:22", None, "fe80::1%eth0", 22),
        ("[::]", 3025, "::", 3025),
        ("::1", 3025, "::1", 3025),
        (":3080", None, "0.0.0.0", 3080),
        ("example.com", 3025, "example.com", 3025),
        (" host-1 ", 1, "host-1", 1),
    ],
)
def test_hostport_parse_good(text: str, default: int | None, host: str, port: int) -> None:
    assert HostPort.parse(text, default) == HostPort(host, port)


@pytest.mark.parametrize(
    ("text", "default"),
    [
        ("", 1),
        ("example.com:65536", None),
        ("example.com:-1", None),
        ("example.com:", 1),
        ("example.com:http", None),
        ("example.com", None),
        ("[::1", 1),
        ("[::1]x", 1),
        ("[1.2.3.4]:80", None),
        ("1:2:3:zz", 1),
        ("bad host:80", None),
        ("-leading.example:80", None),
    ],
)
def test_hostport_parse_bad(text: str, default: int | None) -> None:
    with pytest.raises(BadParameter):
        HostPort.parse(text, default)


@pytest.mark.parametrize("port", [-1, 65536, True])
def test_hostport_rejects_bad_ports(port: int) -> None:
    with pytest.raises(BadParameter):
        HostPort("example.com", port)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (HostPort("127.0.0.1", 3025), "127.0.0.1:3025"),
        (HostPort("::1", 0), "[::1]:0"),
        (HostPort("example.com", 443), "example.com:443"),
    ],
)
def test_hostport_str_round_trips(value: HostPort, text: str) -> None:
    assert str(value) == text
    assert HostPort.parse(str(value)) == value


def test_a_proxy_only_node_takes_several_auth_servers(tmp_path: Path) -> None:
    both = (HostPort("a.example", 3025), HostPort("10.0.0.2", 4000))
    flags = {"roles": "proxy", "auth_server": "a.example,10.0.0.2:4000"}
    assert resolve(flags=flags).auth_server == both
    toml = write(tmp_path, 'roles = ["proxy"]\nauth_server = ["a.example", "10.0.0.2:4000"]\n')
    assert resolve(toml).auth_server == both
    err = bad(env={"MEZITE_ROLES": "proxy", "MEZITE_AUTH_SERVER": "a:1,,b"})
    assert err.message == 'MEZITE_AUTH_SERVER: invalid address list "a:1,,b": item 2 is empty'
