"""The one API a user's client speaks to a cluster: ``ClusterAPI``.

Two adapters, chosen once per profile by ``connect`` (one transport per client, as in
httpx): ``GrpcClusterAPI`` talks to auth directly, ``WebClusterAPI`` to the proxy's REST
API for profiles made with `mez login --proxy`. Both return the generated protobuf
messages: the proxy renders its replies from those messages and the web adapter parses
them back (``proto.webjson``), so the two paths cannot disagree about a field.

A call the API lacks is added in three places: a method here (with both adapters), the
route in ``server/proxy/routes.py`` that makes the same RPC, and its entry in the
OpenAPI paths (the schemas follow from the messages by themselves).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from proto.profile import Profile
    from proto.v1 import auth_pb2 as pb


class ClusterAPI(Protocol):
    """What `mez` asks of a cluster, as one session (or none, before login)."""

    def ping(self) -> pb.PingResponse: ...

    def login(self, username: str, password: str) -> pb.AuthenticateLocalResponse: ...

    def current_user(self) -> pb.GetCurrentUserResponse: ...

    def issue_user_certs(self, public_key: str, ttl_seconds: int) -> pb.IssueUserCertsResponse:
        """A certificate for ``public_key``; 0 asks for the longest the roles allow."""
        ...

    def authenticate_spiffe(
        self, request: pb.AuthenticateSPIFFERequest
    ) -> pb.AuthenticateSPIFFEResponse:
        """An SVID and a proof of its key for a certificate (needs no session)."""
        ...

    def list_recordings(self, user: str, node: str, since: float) -> list[pb.RecordingInfo]:
        """Session recordings the caller may play, newest first."""
        ...

    def recording(self, session_id: str) -> bytes:
        """One recording, the whole asciicast v2 file."""
        ...

    def list_nodes(self, labels: Mapping[str, str], name: str = "") -> list[pb.Node]:
        """Every node (all pages) carrying ``labels`` that the caller may reach; only
        the one with the name or id ``name``, when given."""
        ...

    def logout(self) -> None: ...

    def close(self) -> None: ...


class GrpcClusterAPI:
    """``ClusterAPI`` over auth's gRPC service."""

    def __init__(self, addr: str, ca_pem: bytes, session_id: str | None = None) -> None:
        # Imported here: one transport's stack (grpc here, http.client for the web one)
        # is all a `mez` command loads before it execs ssh.
        from proto.client import AuthClient, ClientIdentity

        self.client = AuthClient(addr, ca_pem, ClientIdentity(session_id=session_id))

    def ping(self) -> pb.PingResponse:
        from proto.v1 import auth_pb2 as pb

        return self.client.rpc.Ping(pb.PingRequest())

    def login(self, username: str, password: str) -> pb.AuthenticateLocalResponse:
        from proto.v1 import auth_pb2 as pb

        request = pb.AuthenticateLocalRequest(username=username, password=password)
        return self.client.rpc.AuthenticateLocal(request)

    def current_user(self) -> pb.GetCurrentUserResponse:
        from proto.v1 import auth_pb2 as pb

        return self.client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())

    def issue_user_certs(self, public_key: str, ttl_seconds: int) -> pb.IssueUserCertsResponse:
        from proto.v1 import auth_pb2 as pb

        request = pb.IssueUserCertsRequest(ssh_public_key=public_key, ttl_seconds=ttl_seconds)
        return self.client.rpc.IssueUserCerts(request)

    def authenticate_spiffe(
        self, request: pb.AuthenticateSPIFFERequest
    ) -> pb.AuthenticateSPIFFEResponse:
        return self.client.rpc.AuthenticateSPIFFE(request)

    def list_recordings(self, user: str, node: str, since: float) -> list[pb.RecordingInfo]:
        from proto.v1 import auth_pb2 as pb

        request = pb.ListSessionRecordingsRequest(user=user, node=node, since=since)
        return list(self.client.rpc.ListSessionRecordings(request).recordings)

    def recording(self, session_id: str) -> bytes:
        from proto.v1 import auth_pb2 as pb

        request = pb.GetSessionRecordingRequest(session_id=session_id)
        return b"".join(part.data for part in self.client.rpc.GetSessionRecording(request))

    def list_nodes(self, labels: Mapping[str, str], name: str = "") -> list[pb.Node]:
        from proto.v1 import auth_pb2 as pb

        nodes: list[pb.Node] = []
        page = ""
        while True:
            reply = self.client.rpc.ListNodes(
                pb.ListNodesRequest(labels=dict(labels), page_token=page, name=name)
            )
            nodes += reply.nodes
            page = reply.next_page_token
            if not page:
                return nodes

    def logout(self) -> None:
        from proto.v1 import auth_pb2 as pb

        self.client.rpc.Logout(pb.LogoutRequest())

    def close(self) -> None:
        self.client.close()


MAX_RECORDING_BYTES = 1024 * 1024 * 1024  # auth's own cap


class WebClusterAPI:
    """``ClusterAPI`` over the proxy's REST API (``/v1/webapi/``)."""

    def __init__(self, web_addr: str, ca_pem: str, session_id: str | None = None) -> None:
        from proto.web_client import WebTransport

        self.web = WebTransport(web_addr, ca_pem, session_id)

    def ping(self) -> pb.PingResponse:
        from proto.v1 import auth_pb2 as pb

        doc = self.web.request("GET", "ping", pb.ProxyPingResponse)  # verified, unlike discovery
        return pb.PingResponse(
            cluster_name=doc.cluster_name,
            server_version=doc.server_version,
            ca_pin=doc.ca_pins[0] if doc.ca_pins else "",
        )

    def login(self, username: str, password: str) -> pb.AuthenticateLocalResponse:
        from proto.v1 import auth_pb2 as pb

        body = {"username": username, "password": password}
        return self.web.request("POST", "login", pb.AuthenticateLocalResponse, body=body)

    def current_user(self) -> pb.GetCurrentUserResponse:
        from proto.v1 import auth_pb2 as pb

        return self.web.request("GET", "me", pb.GetCurrentUserResponse)

    def issue_user_certs(self, public_key: str, ttl_seconds: int) -> pb.IssueUserCertsResponse:
        from proto.v1 import auth_pb2 as pb

        body = {"public_key": public_key, "ttl_seconds": ttl_seconds}
        return self.web.request("POST", "certs", pb.IssueUserCertsResponse, body=body)

    def authenticate_spiffe(
        self, request: pb.AuthenticateSPIFFERequest
    ) -> pb.AuthenticateSPIFFEResponse:
        import base64

        from proto.v1 import auth_pb2 as pb

        body = {
            "svid_chain_pem": request.svid_chain_pem,
            "proof_signature": base64.b64encode(request.proof_signature).decode(),
            "proof_time": int(request.proof_time),
            "ssh_public_key": request.ssh_public_key,
        }
        return self.web.request("POST", "spiffe/certs", pb.AuthenticateSPIFFEResponse, body=body)

    def list_recordings(self, user: str, node: str, since: float) -> list[pb.RecordingInfo]:
        from proto.v1 import auth_pb2 as pb

        params = [(k, v) for k, v in (("user", user), ("node", node)) if v]
        if since:
            params.append(("since", repr(since)))
        reply = self.web.request("GET", "recordings", pb.ListSessionRecordingsResponse,
                                 params=params)  # fmt: skip
        return list(reply.recordings)

    def recording(self, session_id: str) -> bytes:
        return self.web.download(f"sessions/{session_id}/recording", MAX_RECORDING_BYTES)

    def list_nodes(self, labels: Mapping[str, str], name: str = "") -> list[pb.Node]:
        from proto.v1 import auth_pb2 as pb

        found: list[pb.Node] = []
        page = ""
        while True:
            params = [("label", f"{k}={v}") for k, v in labels.items()]
            if name:
                params.append(("name", name))
            if page:
                params.append(("page_token", page))
            reply = self.web.request("GET", "nodes", pb.ListNodesResponse, params=params)
            found += reply.nodes
            page = reply.next_page_token
            if not page:
                return found

    def logout(self) -> None:
        self.web.send("DELETE", "session")

    def close(self) -> None:
        """Nothing held: every request is its own connection."""


def connect(profile: Profile, session_id: str | None = None) -> ClusterAPI:
    """The profile's cluster through the transport it was made with, as its session
    (``session_id``, else the one in the keyring)."""
    from proto.profile import load_session

    session = session_id or load_session(profile)
    if profile.web_addr:
        return WebClusterAPI(profile.web_addr, profile.ca_path.read_text(), session)
    return GrpcClusterAPI(profile.auth_addr, profile.ca_path.read_bytes(), session)
