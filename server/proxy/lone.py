"""A proxy without auth in its process (``mezctl start --roles proxy``).

It joins the cluster at its first start with a proxy-type token and the CA pin (checked
before the token is sent, so a wrong server never sees it), then serves the web API and
SSH routing with the certificates auth issued, and renews them over mTLS when a third of
their lifetime is left (``proto.lifecycle``). Later starts need neither token nor pin.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from typing import TYPE_CHECKING

from proto.addr import ANY_HOST, HostPort, is_dns_name
from proto.clock import Clock, SystemClock
from proto.errors import BadParameter, NotAuthenticated
from proto.lifecycle import Renewer, join_by_pin, register_call
from server.config import DEFAULT_SSH_PORT, DEFAULT_WEB_PORT, ServerConfig
from server.proxy import identity as store
from server.proxy.identity import ProxyIdentity
from server.proxy.service import ProxyService
from server.proxy_files import ProxyCredentials

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def advertised(config: ServerConfig) -> list[str]:
    """What the proxy's certificates name: its public address, its listen hosts, and the
    machine's name when it listens on every interface. Only hosts go into certificates;
    a port 0 (bound at start) is written as the default port."""
    proxy = config.proxy
    hosts: list[HostPort] = []
    if proxy.public_addr:
        hosts.append(HostPort.parse(proxy.public_addr, 443))
    for listen, default in (
        (proxy.web_listen_addr, DEFAULT_WEB_PORT),
        (proxy.ssh_listen_addr, DEFAULT_SSH_PORT),
    ):
        port = listen.port or default
        everywhere = listen.host in (ANY_HOST, "::", "")
        hosts.append(HostPort("127.0.0.1" if everywhere else listen.host, port))
        if everywhere or _is_loopback(listen.host):
            hosts.append(HostPort("localhost", port))
        name = socket.gethostname().lower()
        if everywhere and name and is_dns_name(name):
            hosts.append(HostPort(name, port))
    return list(dict.fromkeys(str(h) for h in hosts))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def auth_addrs(config: ServerConfig) -> str:
    """The auth servers a lone proxy talks to, as the client layer's ``a,b`` list."""
    assert config.auth_server is not None
    return ",".join(str(addr) for addr in config.auth_server)


def _join(config: ServerConfig) -> ProxyIdentity:
    from proto.v1 import auth_pb2 as pb

    assert config.auth_server is not None and config.join_token and config.ca_pin
    keys, pending = store.join_keys(config.data_dir, config.proxy.name)
    request = pb.RegisterAgentRequest(
        token=config.join_token,
        name=config.proxy.name,
        advertise_addrs=advertised(config),
        ssh_public_key=keys.node.ssh_public_line,
        tls_public_key_pem=keys.node.tls_public_pem,
        tls_server_public_key_pem=keys.web.public_pem,
    )
    with pending.refusal_discards():
        joined = join_by_pin(
            auth_addrs(config),
            config.ca_pin,
            register_call(config.join_method, config.aws_region, request),
            hint="an IAM join names a token from `mezctl tokens add --type proxy --join-method iam`"
            if config.join_method == "iam"
            else "a proxy joins with a token from `mezctl tokens add --type proxy`, "
            "and each token works once",
            rerun=True,
        )
    identity = store.save(
        config.data_dir,
        keys,
        joined.reply.credentials,
        name=config.proxy.name,
        cluster_name=joined.cluster_name,
        ca_pin=config.ca_pin,
    )
    pending.discard()
    log.info("proxy %s joined cluster %s (%s)", identity.name, identity.cluster_name,
             identity.agent_id)  # fmt: skip
    return identity


async def join_or_load(config: ServerConfig) -> ProxyIdentity:
    existing = store.load(config.data_dir)
    if existing is None:
        if not config.join_token or not config.ca_pin:
            raise BadParameter(
                "this proxy has not joined a cluster yet: its first start needs a join "
                "token (--token, join_token) and the CA pin (--ca-pin, ca_pin)",
                hint="on the auth host, `mezctl tokens add --type proxy` prints the whole "
                "command line",
            )
        return await asyncio.to_thread(_join, config)
    if config.ca_pin and config.ca_pin != existing.ca_pin:
        raise BadParameter(
            f"this proxy joined the cluster with pin {existing.ca_pin}, not {config.ca_pin}",
            hint=f"unset ca_pin, or move {store.identity_root(config.data_dir)} away and "
            "join again",
        )
    if existing.expires <= time.time():
        raise NotAuthenticated(
            f"this proxy's certificates expired at {time.ctime(existing.expires)} while it "
            "was stopped",
            hint=f"move {store.identity_root(config.data_dir)} away and join again with a "
            "fresh `mezctl tokens add --type proxy`",
        )
    if config.join_token:
        log.info("already joined cluster %s; the join token was not used", existing.cluster_name)
    return existing


def credentials(identity: ProxyIdentity) -> ProxyCredentials:
    return ProxyCredentials(directory=identity.directory, agent_id=identity.agent_id)


async def _renew(
    proxy: ProxyService, config: ServerConfig, current: ProxyIdentity
) -> ProxyIdentity:
    """RenewHostCerts for fresh keys, written as a new generation."""
    keys = store.new_keys()
    reply = await proxy.auth_client().rpc.RenewHostCerts(keys.renewal_request())
    return store.save(
        config.data_dir,
        keys,
        reply.credentials,
        name=current.name,
        cluster_name=current.cluster_name,
        ca_pin=current.ca_pin,
    )


async def _adopt(proxy: ProxyService, fresh: ProxyIdentity) -> None:
    """New HTTPS and SSH connections get the new certificates; the next call to auth
    dials with the new client certificate."""
    await proxy.reload(credentials(fresh))


async def renew_once(
    proxy: ProxyService, config: ServerConfig, identity: ProxyIdentity
) -> ProxyIdentity:
    fresh = await _renew(proxy, config, identity)
    await _adopt(proxy, fresh)
    return fresh


def renewer(
    proxy: ProxyService, config: ServerConfig, identity: ProxyIdentity, clock: Clock | None = None
) -> Renewer[ProxyIdentity]:
    return Renewer(
        f"proxy {identity.name} ({identity.agent_id})",
        identity,
        renew=lambda current: _renew(proxy, config, current),
        adopt=lambda fresh: _adopt(proxy, fresh),
        clock=clock or SystemClock(),
    )


async def renew_until_refused(
    proxy: ProxyService, config: ServerConfig, identity: ProxyIdentity
) -> None:
    # When auth refuses the proxy (removed or locked) the Renewer says so and ends; the
    # proxy keeps its listeners until the process is stopped, and auth refuses what it
    # forwards. See docs/rfd/0007.
    await renewer(proxy, config, identity).run()


async def start(config: ServerConfig) -> tuple[ProxyService, ProxyIdentity]:
    identity = await join_or_load(config)
    assert config.auth_server is not None
    proxy = ProxyService(
        config,
        auth_addrs(config),
        credentials(identity),
        identity.cluster_name,
        identity.ca_pin,
    )
    await proxy.start()
    return proxy, identity
