"""`mez login --spiffe`: a workload's X.509 SVID, and a proof that it holds the SVID's key,
traded for an SSH certificate for the role the SVID names (AuthenticateSPIFFE).

The SVID comes from files (``--svid``, ``--svid-key``) or from the SPIFFE Workload API
(``--workload-api unix:///...`` or ``$SPIFFE_ENDPOINT_SOCKET``, through the ``spiffe``
package, ``mezite[spiffe]``). The profile remembers where, and the certificate is
reissued from the SVID as it is then (a renewed one, from the Workload API) whenever it
has expired. There is no session: nothing goes to the keyring, `mez logout` only removes
local files, and nodes are reached by name through the proxy (which resolves them and
checks the certificate's node access); `mez ls`, which lists with a session, says so.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proto.errors import BadParameter, NotFound
from proto.files import write_private
from proto.profile import Profile

if TYPE_CHECKING:
    from proto.v1 import auth_pb2 as pb

SOCKET_ENV = "SPIFFE_ENDPOINT_SOCKET"
INSTALL_HINT = "install it with `pip install 'mezite[spiffe]'`"


@dataclass(frozen=True)
class SVID:
    chain_pem: str
    private_key: Any  # a cryptography private key
    spiffe_id: str
    not_after: float


def svid_from_files(svid: Path, key: Path) -> SVID:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        chain_pem = svid.read_text()
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
        private_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except OSError as exc:
        raise BadParameter(f"cannot read {exc.filename}: {exc.strerror}") from None
    except ValueError:
        raise BadParameter(f"{svid} or {key} is not a PEM SVID and its key") from None
    return _svid(chain_pem, chain[0], private_key)


def svid_from_workload_api(socket: str) -> SVID:
    from cryptography.hazmat.primitives import serialization

    try:
        from spiffe import WorkloadApiClient
        from spiffe.errors import PySpiffeError
    except ImportError:
        raise NotFound("`mez login --spiffe` with the Workload API needs the spiffe package",
                       hint=INSTALL_HINT) from None  # fmt: skip
    try:
        with WorkloadApiClient(socket, default_timeout=10) as client:
            fetched = client.fetch_x509_svid()
    except PySpiffeError as exc:
        raise NotFound(f"the SPIFFE Workload API at {socket} gave no SVID: {exc}",
                       hint=f"check {SOCKET_ENV} / --workload-api") from None  # fmt: skip
    chain_pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                        for c in fetched.cert_chain)  # fmt: skip
    return _svid(chain_pem, fetched.leaf, fetched.private_key)


def _svid(chain_pem: str, leaf: Any, private_key: Any) -> SVID:
    from cryptography import x509

    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        (uri,) = sans.get_values_for_type(x509.UniformResourceIdentifier)
    except (x509.ExtensionNotFound, ValueError):
        raise BadParameter("the SVID has not exactly one URI SAN") from None
    if leaf.not_valid_after_utc.timestamp() <= time.time():
        raise BadParameter("the SVID has expired", hint="renew it, or fetch a fresh one")
    return SVID(chain_pem, private_key, uri, leaf.not_valid_after_utc.timestamp())


def workload_socket(given: str | None) -> str:
    socket = given or os.environ.get(SOCKET_ENV, "")
    if not socket:
        raise BadParameter(
            "where is the SVID?",
            hint=f"pass --svid FILE --svid-key FILE, or --workload-api unix:///PATH "
            f"(or set {SOCKET_ENV})",
        )
    return socket


def current_svid(profile: Profile) -> SVID:
    if profile.spiffe_socket:
        return svid_from_workload_api(profile.spiffe_socket)
    return svid_from_files(Path(profile.spiffe_svid), Path(profile.spiffe_key))


def issue(profile: Profile, svid: SVID) -> pb.AuthenticateSPIFFEResponse:
    """A fresh SSH key, certified for the SVID's role, written into the profile."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from proto.cluster_api import WebClusterAPI
    from proto.spiffe import sign_proof
    from proto.v1 import auth_pb2 as pb

    key = ed25519.Ed25519PrivateKey.generate()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    signature, proof_time = sign_proof(svid.private_key, profile.cluster, public, time.time())
    request = pb.AuthenticateSPIFFERequest(
        svid_chain_pem=svid.chain_pem, proof_signature=signature, proof_time=proof_time,
        ssh_public_key=public,
    )  # fmt: skip
    api = WebClusterAPI(profile.web_addr, profile.ca_path.read_text())
    try:
        reply = api.authenticate_spiffe(request)
    finally:
        api.close()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()  # fmt: skip
    write_private(profile.key_path, private)
    write_private(profile.cert_path, reply.ssh_certificate + "\n", mode=0o644)
    lines = "".join(f"@cert-authority * {k}\n" for k in reply.host_ca_keys)
    write_private(profile.known_hosts_path, lines, mode=0o644)
    return reply


def login(
    *,
    web_addr: str,
    auth_addr: str,
    proxy_addr: str,
    ca_pem: str,
    pin: str,
    svid_file: Path | None,
    key_file: Path | None,
    socket: str | None,
) -> tuple[Profile, pb.AuthenticateSPIFFEResponse]:
    """Log in as the SVID's SPIFFE ID, through the proxy at ``web_addr``."""
    from cli.mez_client import proxy_ssh_config
    from proto.cluster_api import WebClusterAPI

    if bool(svid_file) != bool(key_file):
        raise BadParameter("give --svid and --svid-key together")
    if svid_file and key_file:
        svid_file, key_file = svid_file.resolve(), key_file.resolve()
        svid, where = svid_from_files(svid_file, key_file), ""
    else:
        where = workload_socket(socket)
        svid = svid_from_workload_api(where)
    api = WebClusterAPI(web_addr, ca_pem)
    try:
        cluster = api.ping().cluster_name
    finally:
        api.close()
    profile = Profile(
        cluster=cluster, user=svid.spiffe_id, auth_addr=auth_addr, ca_pin=pin,
        proxy_addr=proxy_addr, web_addr=web_addr,
        spiffe_svid=str(svid_file or ""), spiffe_key=str(key_file or ""), spiffe_socket=where,
    )  # fmt: skip
    profile.save()
    write_private(profile.ca_path, ca_pem, mode=0o644)
    reply = issue(profile, svid)
    proxy_ssh_config(profile)
    return profile, reply
