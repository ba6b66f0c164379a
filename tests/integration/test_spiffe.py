"""SPIFFE against a real auth server: SVIDs from Mezite's own SPIFFE CA and from an
external test CA trusted with PutSPIFFETrust each get an SSH certificate for their role;
every way an SVID or its proof can be wrong is refused, audited, and issues nothing; the
issued SVIDs pass both the `spiffe` library's parser and cryptography's verifier."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import SSHCertificate, load_ssh_public_identity

from proto.errors import AlreadyExists, BadParameter, MeziteError, NotAuthenticated, NotFound
from proto.keys import new_node_keys
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import audit_events
from tests.servers import RunningAuth
from tests.spiffe_ca import SpireCA, spiffe_request

CLUSTER = "test-cluster"  # tests.servers' cluster name, and so its trust domain


ROLE = "workload"  # fixed logins: a SPIFFE identity has no user's {{internal.logins}}


@pytest.fixture(autouse=True)
def workload_role(auth: RunningAuth) -> None:
    role = pb.Role(name=ROLE, allow=pb.RoleConditions(
        logins=["deploy"], node_labels={"*": pb.LabelValues(values=["*"])}))  # fmt: skip
    with auth.admin() as admin:
        admin.rpc.UpsertRole(pb.UpsertRoleRequest(role=role))


def ssh_key() -> str:
    return new_node_keys().ssh_public_line


def issue(auth: RunningAuth, role: str = ROLE, workload: str = "", ttl: int = 600
          ) -> tuple[pb.IssueSVIDResponse, ec.EllipticCurvePrivateKey]:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with auth.admin() as admin:
        reply = admin.rpc.IssueSVID(pb.IssueSVIDRequest(
            role=role, workload=workload, ttl_seconds=ttl, public_key_pem=public))  # fmt: skip
    return reply, key


def authenticate(
    auth: RunningAuth, request: pb.AuthenticateSPIFFERequest
) -> pb.AuthenticateSPIFFEResponse:
    with auth.client() as anon:
        return anon.rpc.AuthenticateSPIFFE(request)


def trust(auth: RunningAuth, ca: SpireCA, *roles: str) -> None:
    with auth.admin() as admin:
        admin.rpc.PutSPIFFETrust(pb.PutSPIFFETrustRequest(
            trust=pb.SPIFFETrust(trust_domain=ca.trust_domain, bundle_pem=ca.bundle_pem,
                                 roles=list(roles)), create=True))  # fmt: skip


def issued(auth: RunningAuth) -> int:
    return len([e for e in audit_events(auth, "spiffe.authenticate")])


def test_an_svid_from_the_cluster_ca_gets_a_certificate_for_its_role(auth: RunningAuth) -> None:
    from cryptography.x509.verification import PolicyBuilder, Store
    from spiffe import X509Bundle, X509Svid
    from spiffe.spiffe_id.spiffe_id import TrustDomain

    svid, key = issue(auth, workload="ci-runner")
    assert svid.spiffe_id == f"spiffe://{CLUSTER}/role/workload/ci-runner"
    # The spiffe library and cryptography's verifier both accept what the CA issues.
    key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    parsed = X509Svid.parse_raw(
        x509.load_pem_x509_certificate(svid.svid_chain_pem.encode()).public_bytes(
            serialization.Encoding.DER), key_der)  # fmt: skip
    assert str(parsed.spiffe_id) == svid.spiffe_id
    X509Bundle.parse(TrustDomain(CLUSTER), svid.bundle_pem.encode())
    leaf = x509.load_pem_x509_certificate(svid.svid_chain_pem.encode())
    roots = x509.load_pem_x509_certificates(svid.bundle_pem.encode())
    verified = PolicyBuilder().store(Store(roots)).build_client_verifier().verify(leaf, [])
    assert [str(s.value) for s in verified.subjects or []] == [svid.spiffe_id]

    public = ssh_key()
    reply = authenticate(auth, spiffe_request(svid.svid_chain_pem, key, public, CLUSTER))
    cert = load_ssh_public_identity(reply.ssh_certificate.encode())
    assert isinstance(cert, SSHCertificate)
    assert cert.extensions[b"mezite-user@mezite.dev"] == svid.spiffe_id.encode()
    assert f"user={svid.spiffe_id} " in cert.key_id.decode() and reply.role == ROLE
    assert cert.valid_before <= svid.expires  # never outlives the SVID
    assert [p.decode() for p in cert.valid_principals] == ["deploy"] == list(reply.logins)
    assert cert.extensions[b"mezite-kind@mezite.dev"] == b"spiffe"
    (event,) = audit_events(auth, "spiffe.authenticate")
    fields = json.loads(event.fields_json)
    assert (event.user, fields["role"]) == (svid.spiffe_id, ROLE)


def test_an_svid_from_a_trusted_external_domain_gets_its_role(auth: RunningAuth) -> None:
    spire = SpireCA("prod.example.org")
    trust(auth, spire, ROLE)
    chain, key = spire.svid("spiffe://prod.example.org/role/workload/web")
    reply = authenticate(auth, spiffe_request(chain, key, ssh_key(), CLUSTER))
    assert reply.spiffe_id == "spiffe://prod.example.org/role/workload/web"


Refusal = Callable[[RunningAuth], pb.AuthenticateSPIFFERequest]


def _foreign_leaf_from_trusted_root(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    spire, other = SpireCA("prod.example.org"), SpireCA("evil.example.org")
    trust(auth, spire, ROLE)
    trust(auth, other, ROLE)
    chain, key = spire.svid("spiffe://evil.example.org/role/workload")  # prod's root, evil's ID
    return spiffe_request(chain, key, ssh_key(), CLUSTER)


def _own_domain_from_a_trusted_root(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    spire = SpireCA("prod.example.org")
    trust(auth, spire, ROLE)
    chain, key = spire.svid(f"spiffe://{CLUSTER}/role/workload")
    return spiffe_request(chain, key, ssh_key(), CLUSTER)


def _two_uris(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    spire = SpireCA("prod.example.org")
    trust(auth, spire, ROLE)
    chain, key = spire.svid("spiffe://prod.example.org/role/workload",
                            "spiffe://prod.example.org/role/admin")  # fmt: skip
    return spiffe_request(chain, key, ssh_key(), CLUSTER)


def _ca_leaf(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    spire = SpireCA("prod.example.org")
    trust(auth, spire, ROLE)
    chain, key = spire.svid("spiffe://prod.example.org/role/workload", ca=True)
    return spiffe_request(chain, key, ssh_key(), CLUSTER)


def _role_not_allowed(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    spire = SpireCA("prod.example.org")
    trust(auth, spire, ROLE)
    chain, key = spire.svid("spiffe://prod.example.org/role/admin")
    return spiffe_request(chain, key, ssh_key(), CLUSTER)


def _expired(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    spire = SpireCA("prod.example.org")
    trust(auth, spire, ROLE)
    chain, key = spire.svid("spiffe://prod.example.org/role/workload", expired=True)
    return spiffe_request(chain, key, ssh_key(), CLUSTER)


def _untrusted(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    chain, key = SpireCA("nobody.example").svid("spiffe://nobody.example/role/workload")
    return spiffe_request(chain, key, ssh_key(), CLUSTER)


def _no_proof(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    svid, key = issue(auth)
    request = spiffe_request(svid.svid_chain_pem, key, ssh_key(), CLUSTER)
    request.proof_signature = b""
    return request


def _stale_proof(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    svid, key = issue(auth)
    return spiffe_request(svid.svid_chain_pem, key, ssh_key(), CLUSTER, at=time.time() - 600)


def _wrong_key_proof(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    svid, _ = issue(auth)
    thief = ec.generate_private_key(ec.SECP256R1())  # has the public chain, not the key
    return spiffe_request(svid.svid_chain_pem, thief, ssh_key(), CLUSTER)


def _proof_for_another_ssh_key(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    svid, key = issue(auth)
    request = spiffe_request(svid.svid_chain_pem, key, ssh_key(), CLUSTER)
    request.ssh_public_key = ssh_key()
    return request


def _proof_for_another_cluster(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    svid, key = issue(auth)
    return spiffe_request(svid.svid_chain_pem, key, ssh_key(), "other-cluster")


def _role_gone(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    svid, key = issue(auth, role="auditor")
    with auth.admin() as admin:
        admin.rpc.DeleteRole(pb.DeleteRoleRequest(name="auditor"))
    return spiffe_request(svid.svid_chain_pem, key, ssh_key(), CLUSTER)


def _role_without_logins(auth: RunningAuth) -> pb.AuthenticateSPIFFERequest:
    svid, key = issue(auth, role="access")  # logins={{internal.logins}}: a user's
    return spiffe_request(svid.svid_chain_pem, key, ssh_key(), CLUSTER)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_foreign_leaf_from_trusted_root, "does not chain to evil.example.org"),
        (_own_domain_from_a_trusted_root, f"does not chain to {CLUSTER}"),
        (_two_uris, "exactly one URI SAN"),
        (_ca_leaf, "CA certificate"),
        (_role_not_allowed, "may not claim role 'admin'"),
        (_expired, "does not chain"),
        (_untrusted, "is not trusted"),
        (_no_proof, "does not verify"),
        (_stale_proof, "stale"),
        (_wrong_key_proof, "does not verify"),
        (_proof_for_another_ssh_key, "does not verify"),
        (_proof_for_another_cluster, "does not verify"),
        (_role_gone, "does not exist"),
        (_role_without_logins, "no logins"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_refusals_are_audited_and_issue_nothing(
    auth: RunningAuth, make: Refusal, message: str
) -> None:
    request = make(auth)
    with pytest.raises(MeziteError, match=message):
        authenticate(auth, request)
    assert issued(auth) == 0 and audit_events(auth, "cert.create") == []
    (failed,) = audit_events(auth, "spiffe.authenticate.failed")
    assert message.split("'")[0].strip() in json.loads(failed.fields_json)["reason"]


def test_malformed_chains_are_one_line_errors(auth: RunningAuth) -> None:
    for chain in ("", "not pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                  "x" * (65 * 1024)):  # fmt: skip
        with pytest.raises(BadParameter):
            authenticate(auth, pb.AuthenticateSPIFFERequest(svid_chain_pem=chain))
    spire = SpireCA("prod.example.org")
    chain, _ = spire.svid("spiffe://prod.example.org/role/workload")
    with pytest.raises(BadParameter, match="1 to 4 certificates"):
        authenticate(auth, pb.AuthenticateSPIFFERequest(svid_chain_pem=chain * 5))
    for uri in ("spiffe://prod.example.org/role/a%2Fb", "spiffe://Prod.example.org/role/x",
                "spiffe://prod.example.org/other/x", "spiffe://prod.example.org/role/../x",
                "https://prod.example.org/role/x"):  # fmt: skip
        chain, _ = spire.svid(uri)
        with pytest.raises(MeziteError):
            authenticate(auth, pb.AuthenticateSPIFFERequest(svid_chain_pem=chain))
    assert issued(auth) == 0


def test_trusted_domains_are_managed_and_checked(auth: RunningAuth) -> None:
    spire = SpireCA("prod.example.org")
    trust(auth, spire, ROLE)
    with auth.admin() as admin:
        with pytest.raises(AlreadyExists):
            trust(auth, spire, ROLE)
        with pytest.raises(BadParameter, match="own trust domain"):
            trust(auth, SpireCA(CLUSTER), "access")
        with pytest.raises(NotFound):
            admin.rpc.PutSPIFFETrust(pb.PutSPIFFETrustRequest(
                trust=pb.SPIFFETrust(trust_domain="nope.example", roles=["access"])))  # fmt: skip
        leaf, _ = spire.svid("spiffe://prod.example.org/role/workload")
        with pytest.raises(BadParameter, match="must be a CA"):
            leaf_only = pb.SPIFFETrust(trust_domain="x.example", bundle_pem=leaf, roles=["access"])
            admin.rpc.PutSPIFFETrust(pb.PutSPIFFETrustRequest(trust=leaf_only, create=True))
        rotated = SpireCA("prod.example.org")  # a new root: update keeps the roles
        admin.rpc.PutSPIFFETrust(pb.PutSPIFFETrustRequest(trust=pb.SPIFFETrust(
            trust_domain="prod.example.org", bundle_pem=rotated.bundle_pem)))  # fmt: skip
        (listed,) = admin.rpc.ListSPIFFETrust(pb.ListSPIFFETrustRequest()).trusts
        assert (listed.trust_domain, list(listed.roles)) == ("prod.example.org", [ROLE])
        old_chain, old_key = spire.svid("spiffe://prod.example.org/role/workload")
        with pytest.raises(NotAuthenticated, match="does not chain"):
            authenticate(auth, spiffe_request(old_chain, old_key, ssh_key(), CLUSTER))
        new_chain, new_key = rotated.svid("spiffe://prod.example.org/role/workload")
        authenticate(auth, spiffe_request(new_chain, new_key, ssh_key(), CLUSTER))
        admin.rpc.DeleteSPIFFETrust(pb.DeleteSPIFFETrustRequest(trust_domain="prod.example.org"))
        assert list(admin.rpc.ListSPIFFETrust(pb.ListSPIFFETrustRequest()).trusts) == []
    with pytest.raises(NotAuthenticated, match="is not trusted"):  # removed: at once
        authenticate(auth, spiffe_request(new_chain, new_key, ssh_key(), CLUSTER))


def test_the_bundle_is_public_in_pem_and_as_jwks(auth: RunningAuth) -> None:
    with auth.client() as anon:
        bundle = anon.rpc.GetSPIFFEBundle(pb.GetSPIFFEBundleRequest())
    assert bundle.trust_domain == CLUSTER
    (ca,) = x509.load_pem_x509_certificates(bundle.bundle_pem.encode())
    jwks = json.loads(bundle.bundle_jwks)
    (jwk,) = jwks["keys"]
    assert jwk["use"] == "x509-svid" and jwk["kty"] == "EC" and jwk["crv"] == "P-256"
    assert "spiffe_sequence" in jwks
    assert auth.server.cas is not None
    assert ca.public_key() != auth.server.cas.host_x509.cert.public_key()


def test_the_spiffe_ca_is_not_trusted_for_agents_mtls(auth: RunningAuth) -> None:
    """An SVID presented as a client certificate on 3025 is not an agent identity."""
    svid, key = issue(auth)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    from proto.trust import AUTH_SERVER_NAME

    creds = grpc.ssl_channel_credentials(
        root_certificates=auth.ca_pem,
        private_key=key_pem,
        certificate_chain=svid.svid_chain_pem.encode(),
    )
    options = [("grpc.ssl_target_name_override", AUTH_SERVER_NAME)]
    with grpc.secure_channel(auth.addr, creds, options=options) as channel:
        call = channel.unary_unary(
            "/mezite.v1.AuthService/ListNodes",
            request_serializer=pb.ListNodesRequest.SerializeToString,
            response_deserializer=pb.ListNodesResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as info:
            call(pb.ListNodesRequest(), metadata=(("x-agent-id", svid.spiffe_id),), timeout=10)
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)


def test_issue_svid_checks_its_input(auth: RunningAuth) -> None:
    for role, workload, ttl in (("nope", "", 600), ("access", "a/b", 600), ("access", "", 10),
                                ("Access", "%41", 600)):  # fmt: skip
        with pytest.raises(MeziteError):
            issue(auth, role=role, workload=workload, ttl=ttl)
    assert audit_events(auth, "spiffe.svid.issue") == []


def test_the_proxy_serves_the_bundle_and_the_exchange_to_3080_only_clients(
    auth: RunningAuth, tmp_path: Path
) -> None:
    import base64

    from tests.integration.proxy_fixtures import proxy_for

    svid, key = issue(auth)
    public = ssh_key()
    request = spiffe_request(svid.svid_chain_pem, key, public, CLUSTER)
    body = {
        "svid_chain_pem": request.svid_chain_pem,
        "proof_signature": base64.b64encode(request.proof_signature).decode(),
        "proof_time": int(request.proof_time),
        "ssh_public_key": public,
    }
    with proxy_for(auth, tmp_path / "tls") as proxy, proxy.client() as web:
        bundle = web.get("/v1/webapi/spiffe/bundle")
        assert bundle.status_code == 200 and bundle.json()["trust_domain"] == CLUSTER
        done = web.post("/v1/webapi/spiffe/certs", json=body)
        assert done.status_code == 200, done.text
        assert done.json()["spiffe_id"] == svid.spiffe_id
        for bad, status in (({**body, "proof_signature": "!!"}, 400),
                            ({**body, "ssh_public_key": ssh_key()}, 401)):  # fmt: skip
            refused = web.post("/v1/webapi/spiffe/certs", json=bad)
            assert refused.status_code == status, refused.text
            assert set(refused.json()) == {"error"}
    assert issued(auth) == 1


def test_an_agent_identity_carries_an_svid_renewed_with_the_rest(
    auth: RunningAuth, tmp_path: Path
) -> None:
    from agent import bot

    assert auth.server.cas is not None
    pin = auth.server.cas.host_x509.pin
    with auth.admin() as admin:
        token = admin.rpc.CreateAgentIdentity(pb.CreateAgentIdentityRequest(
            name="ci", roles=["access"], logins=["ci"], ttl_seconds=600, spiffe_role=ROLE,
        )).bootstrap_token  # fmt: skip
        plain_request = pb.CreateAgentIdentityRequest(
            name="plain", roles=["access"], logins=["ci"], ttl_seconds=600
        )
        plain = admin.rpc.CreateAgentIdentity(plain_request).bootstrap_token
        with pytest.raises(NotFound):
            admin.rpc.CreateAgentIdentity(pb.CreateAgentIdentityRequest(
                name="x", roles=["access"], logins=["ci"], spiffe_role="nope"))  # fmt: skip
    # A bootstrap that sends no SVID key (an older mezd) is refused and spends nothing.
    keys = new_node_keys()
    with auth.client() as anon, pytest.raises(BadParameter, match="carries an SVID"):
        anon.rpc.BootstrapAgentIdentity(pb.BootstrapAgentIdentityRequest(
            token=token, ssh_public_key=keys.ssh_public_line,
            tls_public_key_pem=keys.tls_public_pem))  # fmt: skip
    state = bot.bootstrap(tmp_path / "state", token, auth.addr, pin)
    assert state.spiffe_id == f"spiffe://{CLUSTER}/role/{ROLE}/ci"
    bot.write_outputs(tmp_path / "out", state)
    for name in ("svid.pem", "svid_key.pem", "bundle.pem"):
        assert (tmp_path / "out" / name).stat().st_mode & 0o777 == 0o600
    chain, key = (tmp_path / "out" / "svid.pem").read_text(), (tmp_path / "out" / "svid_key.pem")
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    reply = authenticate(auth, spiffe_request(chain, private, ssh_key(), CLUSTER))
    assert reply.spiffe_id == state.spiffe_id
    renewed = bot.renew(tmp_path / "state", state)
    first = x509.load_pem_x509_certificate(state.svid_pem.encode())
    second = x509.load_pem_x509_certificate(renewed.svid_pem.encode())
    assert second.serial_number != first.serial_number
    assert renewed.svid_key_pem != state.svid_key_pem  # a new key with each renewal
    assert bot.bootstrap(tmp_path / "plain", plain, auth.addr, pin).svid_pem == ""


def rule(name: str = "web", **fields: object) -> pb.WorkloadRule:
    message = pb.WorkloadRule(name=name, role=ROLE, ttl_seconds=600)
    for key, value in fields.items():
        if isinstance(value, dict):
            message.node_labels.update(value)
        else:
            setattr(message, key, value)
    return message


def put_rule(auth: RunningAuth, message: pb.WorkloadRule) -> None:
    with auth.admin() as admin:
        admin.rpc.PutWorkloadRule(pb.PutWorkloadRuleRequest(rule=message))


def facts(uid: int = 1000, gid: int = 1000, user: str = "app", exe: str = "/usr/bin/app",
          pid: int = 4242) -> pb.WorkloadFacts:  # fmt: skip
    return pb.WorkloadFacts(pid=pid, uid=uid, gid=gid, user=user, exe=exe)


def svid_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_workload_rules_admit_what_the_node_attests_on_matching_nodes(
    auth: RunningAuth, tmp_path: Path
) -> None:
    from tests.integration.test_nodes import join_node

    put_rule(auth, rule("web", unix_uid=1000, node_labels={"env": "prod"}))
    put_rule(auth, rule("by-exe", exe="/usr/bin/app"))
    put_rule(auth, rule("root-only", unix_uid=0))
    prod = join_node(auth, tmp_path / "prod", "prod-1", env="prod")
    dev = join_node(auth, tmp_path / "dev", "dev-1", env="dev")

    def ask(node: object, given: pb.WorkloadFacts) -> list[str]:
        with auth.client(node.client_identity()) as client:  # type: ignore[attr-defined]
            reply = client.rpc.IssueWorkloadSVIDs(
                pb.IssueWorkloadSVIDsRequest(facts=given, public_key_pem=svid_key_pem())
            )
        assert reply.trust_domain == CLUSTER and "BEGIN CERTIFICATE" in reply.bundle_pem
        return sorted(s.spiffe_id for s in reply.svids)

    base = f"spiffe://{CLUSTER}/role/{ROLE}"
    assert ask(prod, facts()) == [f"{base}/by-exe", f"{base}/web"]
    assert ask(dev, facts()) == [f"{base}/by-exe"]  # labels come from auth's own record
    assert ask(prod, facts(uid=1001, exe="/usr/bin/other")) == []
    issued_events = audit_events(auth, "spiffe.svid.issue")
    assert {json.loads(e.fields_json)["node"] for e in issued_events} == {"prod-1", "dev-1"}
    with auth.admin() as admin:
        admin.rpc.DeleteWorkloadRule(pb.DeleteWorkloadRuleRequest(name="web"))
    assert ask(prod, facts()) == [f"{base}/by-exe"]  # removed: not renewed
    # Users and admins may not ask: it is a node's call.
    with auth.admin() as admin, pytest.raises(MeziteError):
        admin.rpc.IssueWorkloadSVIDs(pb.IssueWorkloadSVIDsRequest(facts=facts()))


@pytest.mark.parametrize(
    ("fields", "message"),
    [({}, "admit every process"), ({"unix_uid": 1, "unix_user": "x"}, "not both"),
     ({"exe": "bin/app"}, "absolute"), ({"exe": "/usr/../bin/sh"}, "normalised"),
     ({"unix_uid": 1, "ttl_seconds": 5}, "10 seconds"), ({"unix_uid": 1, "role": "nope"}, "nope"),
     ({"unix_uid": 1, "name": "a/b"}, "invalid")],
)  # fmt: skip
def test_bad_workload_rules_are_refused_and_change_nothing(
    auth: RunningAuth, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(MeziteError, match=message):
        put_rule(auth, rule(**fields))
    with auth.admin() as admin:
        assert list(admin.rpc.ListWorkloadRules(pb.ListWorkloadRulesRequest()).rules) == []
