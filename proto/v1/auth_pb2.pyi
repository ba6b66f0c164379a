from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CertAuthority(_message.Message):
    __slots__ = ("kind", "public_data", "fingerprint")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_DATA_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    public_data: str
    fingerprint: str
    def __init__(self, kind: _Optional[str] = ..., public_data: _Optional[str] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "name", "addr", "labels", "last_seen", "seen_from")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    SEEN_FROM_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    addr: str
    labels: _containers.ScalarMap[str, str]
    last_seen: float
    seen_from: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., addr: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., last_seen: _Optional[float] = ..., seen_from: _Optional[str] = ...) -> None: ...

class Role(_message.Message):
    __slots__ = ("name", "allow", "deny", "options")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    DENY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    allow: RoleConditions
    deny: RoleConditions
    options: RoleOptions
    def __init__(self, name: _Optional[str] = ..., allow: _Optional[_Union[RoleConditions, _Mapping]] = ..., deny: _Optional[_Union[RoleConditions, _Mapping]] = ..., options: _Optional[_Union[RoleOptions, _Mapping]] = ...) -> None: ...

class RoleConditions(_message.Message):
    __slots__ = ("logins", "node_labels")
    class NodeLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: LabelValues
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[LabelValues, _Mapping]] = ...) -> None: ...
    LOGINS_FIELD_NUMBER: _ClassVar[int]
    NODE_LABELS_FIELD_NUMBER: _ClassVar[int]
    logins: _containers.RepeatedScalarFieldContainer[str]
    node_labels: _containers.MessageMap[str, LabelValues]
    def __init__(self, logins: _Optional[_Iterable[str]] = ..., node_labels: _Optional[_Mapping[str, LabelValues]] = ...) -> None: ...

class LabelValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class RoleOptions(_message.Message):
    __slots__ = ("max_session_ttl", "permit_pty", "port_forwarding", "agent_forwarding", "record_sessions")
    MAX_SESSION_TTL_FIELD_NUMBER: _ClassVar[int]
    PERMIT_PTY_FIELD_NUMBER: _ClassVar[int]
    PORT_FORWARDING_FIELD_NUMBER: _ClassVar[int]
    AGENT_FORWARDING_FIELD_NUMBER: _ClassVar[int]
    RECORD_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    max_session_ttl: int
    permit_pty: bool
    port_forwarding: bool
    agent_forwarding: bool
    record_sessions: bool
    def __init__(self, max_session_ttl: _Optional[int] = ..., permit_pty: _Optional[bool] = ..., port_forwarding: _Optional[bool] = ..., agent_forwarding: _Optional[bool] = ..., record_sessions: _Optional[bool] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "type", "code", "time", "user", "session_id", "fields_json", "success")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_JSON_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    code: str
    time: float
    user: str
    session_id: str
    fields_json: str
    success: bool
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., code: _Optional[str] = ..., time: _Optional[float] = ..., user: _Optional[str] = ..., session_id: _Optional[str] = ..., fields_json: _Optional[str] = ..., success: _Optional[bool] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("cluster_name", "server_version", "ca_pin")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CA_PIN_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    server_version: str
    ca_pin: str
    def __init__(self, cluster_name: _Optional[str] = ..., server_version: _Optional[str] = ..., ca_pin: _Optional[str] = ...) -> None: ...

class ProxyPingResponse(_message.Message):
    __slots__ = ("cluster_name", "auth_addr", "proxy_ssh_addr", "ca_pins", "ca_pem", "server_version")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    AUTH_ADDR_FIELD_NUMBER: _ClassVar[int]
    PROXY_SSH_ADDR_FIELD_NUMBER: _ClassVar[int]
    CA_PINS_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    auth_addr: str
    proxy_ssh_addr: str
    ca_pins: _containers.RepeatedScalarFieldContainer[str]
    ca_pem: str
    server_version: str
    def __init__(self, cluster_name: _Optional[str] = ..., auth_addr: _Optional[str] = ..., proxy_ssh_addr: _Optional[str] = ..., ca_pins: _Optional[_Iterable[str]] = ..., ca_pem: _Optional[str] = ..., server_version: _Optional[str] = ...) -> None: ...

class GetClusterCAsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterCAsResponse(_message.Message):
    __slots__ = ("cluster_name", "authorities")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    AUTHORITIES_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    authorities: _containers.RepeatedCompositeFieldContainer[CertAuthority]
    def __init__(self, cluster_name: _Optional[str] = ..., authorities: _Optional[_Iterable[_Union[CertAuthority, _Mapping]]] = ...) -> None: ...

class GetClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterStatusResponse(_message.Message):
    __slots__ = ("cluster_name", "server_version", "ca_pin", "authorities", "caller")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CA_PIN_FIELD_NUMBER: _ClassVar[int]
    AUTHORITIES_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    server_version: str
    ca_pin: str
    authorities: _containers.RepeatedCompositeFieldContainer[CertAuthority]
    caller: str
    def __init__(self, cluster_name: _Optional[str] = ..., server_version: _Optional[str] = ..., ca_pin: _Optional[str] = ..., authorities: _Optional[_Iterable[_Union[CertAuthority, _Mapping]]] = ..., caller: _Optional[str] = ...) -> None: ...

class AuthenticateLocalRequest(_message.Message):
    __slots__ = ("username", "password")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class AuthenticateLocalResponse(_message.Message):
    __slots__ = ("session_id", "expires")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    expires: float
    def __init__(self, session_id: _Optional[str] = ..., expires: _Optional[float] = ...) -> None: ...

class AcceptInviteRequest(_message.Message):
    __slots__ = ("token", "password")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    token: str
    password: str
    def __init__(self, token: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class AcceptInviteResponse(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCurrentUserRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCurrentUserResponse(_message.Message):
    __slots__ = ("username", "roles", "logins", "session_expires")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    LOGINS_FIELD_NUMBER: _ClassVar[int]
    SESSION_EXPIRES_FIELD_NUMBER: _ClassVar[int]
    username: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    logins: _containers.RepeatedScalarFieldContainer[str]
    session_expires: float
    def __init__(self, username: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., logins: _Optional[_Iterable[str]] = ..., session_expires: _Optional[float] = ...) -> None: ...

class IssueUserCertsRequest(_message.Message):
    __slots__ = ("ssh_public_key", "ttl_seconds")
    SSH_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ssh_public_key: str
    ttl_seconds: int
    def __init__(self, ssh_public_key: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class IssueUserCertsResponse(_message.Message):
    __slots__ = ("ssh_certificate", "host_ca_keys", "tls_ca_pem", "valid_before")
    SSH_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    HOST_CA_KEYS_FIELD_NUMBER: _ClassVar[int]
    TLS_CA_PEM_FIELD_NUMBER: _ClassVar[int]
    VALID_BEFORE_FIELD_NUMBER: _ClassVar[int]
    ssh_certificate: str
    host_ca_keys: _containers.RepeatedScalarFieldContainer[str]
    tls_ca_pem: str
    valid_before: float
    def __init__(self, ssh_certificate: _Optional[str] = ..., host_ca_keys: _Optional[_Iterable[str]] = ..., tls_ca_pem: _Optional[str] = ..., valid_before: _Optional[float] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("name", "roles", "logins", "has_password", "created")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    LOGINS_FIELD_NUMBER: _ClassVar[int]
    HAS_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    name: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    logins: _containers.RepeatedScalarFieldContainer[str]
    has_password: bool
    created: float
    def __init__(self, name: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., logins: _Optional[_Iterable[str]] = ..., has_password: _Optional[bool] = ..., created: _Optional[float] = ...) -> None: ...

class CreateUserRequest(_message.Message):
    __slots__ = ("name", "roles", "logins", "password")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    LOGINS_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    name: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    logins: _containers.RepeatedScalarFieldContainer[str]
    password: str
    def __init__(self, name: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., logins: _Optional[_Iterable[str]] = ..., password: _Optional[str] = ...) -> None: ...

class CreateUserResponse(_message.Message):
    __slots__ = ("invite_token", "invite_expires")
    INVITE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INVITE_EXPIRES_FIELD_NUMBER: _ClassVar[int]
    invite_token: str
    invite_expires: float
    def __init__(self, invite_token: _Optional[str] = ..., invite_expires: _Optional[float] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[User]
    def __init__(self, users: _Optional[_Iterable[_Union[User, _Mapping]]] = ...) -> None: ...

class DeleteUserRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteUserResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetUserRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ResetUserResponse(_message.Message):
    __slots__ = ("invite_token", "invite_expires")
    INVITE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INVITE_EXPIRES_FIELD_NUMBER: _ClassVar[int]
    invite_token: str
    invite_expires: float
    def __init__(self, invite_token: _Optional[str] = ..., invite_expires: _Optional[float] = ...) -> None: ...

class UpsertRoleRequest(_message.Message):
    __slots__ = ("role",)
    ROLE_FIELD_NUMBER: _ClassVar[int]
    role: Role
    def __init__(self, role: _Optional[_Union[Role, _Mapping]] = ...) -> None: ...

class UpsertRoleResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: bool
    def __init__(self, created: _Optional[bool] = ...) -> None: ...

class ListRolesRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListRolesResponse(_message.Message):
    __slots__ = ("roles",)
    ROLES_FIELD_NUMBER: _ClassVar[int]
    roles: _containers.RepeatedCompositeFieldContainer[Role]
    def __init__(self, roles: _Optional[_Iterable[_Union[Role, _Mapping]]] = ...) -> None: ...

class DeleteRoleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteRoleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JoinToken(_message.Message):
    __slots__ = ("name", "type", "expires", "labels", "join_method", "allow")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    JOIN_METHOD_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    expires: float
    labels: _containers.ScalarMap[str, str]
    join_method: str
    allow: _containers.RepeatedCompositeFieldContainer[AWSRule]
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., expires: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., join_method: _Optional[str] = ..., allow: _Optional[_Iterable[_Union[AWSRule, _Mapping]]] = ...) -> None: ...

class AWSRule(_message.Message):
    __slots__ = ("aws_account", "aws_arn")
    AWS_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AWS_ARN_FIELD_NUMBER: _ClassVar[int]
    aws_account: str
    aws_arn: str
    def __init__(self, aws_account: _Optional[str] = ..., aws_arn: _Optional[str] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("type", "ttl_seconds", "labels", "join_method", "name", "allow")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    JOIN_METHOD_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    type: str
    ttl_seconds: int
    labels: _containers.ScalarMap[str, str]
    join_method: str
    name: str
    allow: _containers.RepeatedCompositeFieldContainer[AWSRule]
    def __init__(self, type: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., join_method: _Optional[str] = ..., name: _Optional[str] = ..., allow: _Optional[_Iterable[_Union[AWSRule, _Mapping]]] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("token", "name", "expires")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    token: str
    name: str
    expires: float
    def __init__(self, token: _Optional[str] = ..., name: _Optional[str] = ..., expires: _Optional[float] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[JoinToken]
    def __init__(self, tokens: _Optional[_Iterable[_Union[JoinToken, _Mapping]]] = ...) -> None: ...

class DeleteTokenRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTokenResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class Agent(_message.Message):
    __slots__ = ("id", "kind", "name", "created", "labels", "online", "addrs")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    ADDRS_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    name: str
    created: float
    labels: _containers.ScalarMap[str, str]
    online: bool
    addrs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., name: _Optional[str] = ..., created: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., online: _Optional[bool] = ..., addrs: _Optional[_Iterable[str]] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[Agent]
    def __init__(self, agents: _Optional[_Iterable[_Union[Agent, _Mapping]]] = ...) -> None: ...

class DeleteAgentRequest(_message.Message):
    __slots__ = ("id_or_name", "kind")
    ID_OR_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    id_or_name: str
    kind: str
    def __init__(self, id_or_name: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class DeleteAgentResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RegisterAgentRequest(_message.Message):
    __slots__ = ("token", "name", "advertise_addrs", "ssh_public_key", "tls_public_key_pem", "labels", "tls_server_public_key_pem")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADVERTISE_ADDRS_FIELD_NUMBER: _ClassVar[int]
    SSH_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    TLS_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TLS_SERVER_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    token: str
    name: str
    advertise_addrs: _containers.RepeatedScalarFieldContainer[str]
    ssh_public_key: str
    tls_public_key_pem: str
    labels: _containers.ScalarMap[str, str]
    tls_server_public_key_pem: str
    def __init__(self, token: _Optional[str] = ..., name: _Optional[str] = ..., advertise_addrs: _Optional[_Iterable[str]] = ..., ssh_public_key: _Optional[str] = ..., tls_public_key_pem: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., tls_server_public_key_pem: _Optional[str] = ...) -> None: ...

class AgentCredentials(_message.Message):
    __slots__ = ("agent_id", "ssh_host_certificate", "tls_certificate_pem", "tls_ca_pem", "user_ca_keys", "host_ca_keys", "expires", "labels", "tls_server_certificate_pem")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SSH_HOST_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    TLS_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    TLS_CA_PEM_FIELD_NUMBER: _ClassVar[int]
    USER_CA_KEYS_FIELD_NUMBER: _ClassVar[int]
    HOST_CA_KEYS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TLS_SERVER_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    ssh_host_certificate: str
    tls_certificate_pem: str
    tls_ca_pem: str
    user_ca_keys: _containers.RepeatedScalarFieldContainer[str]
    host_ca_keys: _containers.RepeatedScalarFieldContainer[str]
    expires: float
    labels: _containers.ScalarMap[str, str]
    tls_server_certificate_pem: str
    def __init__(self, agent_id: _Optional[str] = ..., ssh_host_certificate: _Optional[str] = ..., tls_certificate_pem: _Optional[str] = ..., tls_ca_pem: _Optional[str] = ..., user_ca_keys: _Optional[_Iterable[str]] = ..., host_ca_keys: _Optional[_Iterable[str]] = ..., expires: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., tls_server_certificate_pem: _Optional[str] = ...) -> None: ...

class RegisterAgentResponse(_message.Message):
    __slots__ = ("credentials",)
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    credentials: AgentCredentials
    def __init__(self, credentials: _Optional[_Union[AgentCredentials, _Mapping]] = ...) -> None: ...

class RegisterUsingIAMMethodRequest(_message.Message):
    __slots__ = ("register", "sts_request")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    STS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    register: RegisterAgentRequest
    sts_request: SignedSTSRequest
    def __init__(self, register: _Optional[_Union[RegisterAgentRequest, _Mapping]] = ..., sts_request: _Optional[_Union[SignedSTSRequest, _Mapping]] = ...) -> None: ...

class SignedSTSRequest(_message.Message):
    __slots__ = ("body", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BODY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    headers: _containers.ScalarMap[str, str]
    def __init__(self, body: _Optional[bytes] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RegisterUsingIAMMethodResponse(_message.Message):
    __slots__ = ("challenge", "credentials")
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    challenge: str
    credentials: AgentCredentials
    def __init__(self, challenge: _Optional[str] = ..., credentials: _Optional[_Union[AgentCredentials, _Mapping]] = ...) -> None: ...

class RenewHostCertsRequest(_message.Message):
    __slots__ = ("ssh_public_key", "tls_public_key_pem", "tls_server_public_key_pem", "advertise_addrs")
    SSH_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    TLS_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    TLS_SERVER_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    ADVERTISE_ADDRS_FIELD_NUMBER: _ClassVar[int]
    ssh_public_key: str
    tls_public_key_pem: str
    tls_server_public_key_pem: str
    advertise_addrs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ssh_public_key: _Optional[str] = ..., tls_public_key_pem: _Optional[str] = ..., tls_server_public_key_pem: _Optional[str] = ..., advertise_addrs: _Optional[_Iterable[str]] = ...) -> None: ...

class RenewHostCertsResponse(_message.Message):
    __slots__ = ("credentials",)
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    credentials: AgentCredentials
    def __init__(self, credentials: _Optional[_Union[AgentCredentials, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("name", "addr", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    addr: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., addr: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("ttl_seconds",)
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ttl_seconds: float
    def __init__(self, ttl_seconds: _Optional[float] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("labels", "limit", "page_token", "name")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    limit: int
    page_token: str
    name: str
    def __init__(self, labels: _Optional[_Mapping[str, str]] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes", "next_page_token")
    NODES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    next_page_token: str
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class EmitAuditEventRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ...) -> None: ...

class EmitAuditEventResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SearchAuditEventsRequest(_message.Message):
    __slots__ = ("start", "end", "types", "user", "limit", "page_token", "node", "newest_first")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    start: float
    end: float
    types: _containers.RepeatedScalarFieldContainer[str]
    user: str
    limit: int
    page_token: str
    node: str
    newest_first: bool
    def __init__(self, start: _Optional[float] = ..., end: _Optional[float] = ..., types: _Optional[_Iterable[str]] = ..., user: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ..., node: _Optional[str] = ..., newest_first: _Optional[bool] = ...) -> None: ...

class SearchAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AgentIdentity(_message.Message):
    __slots__ = ("name", "roles", "generation", "last_renewed", "locked", "ttl_seconds", "logins", "spiffe_role")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    LAST_RENEWED_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOGINS_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ROLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    generation: int
    last_renewed: float
    locked: bool
    ttl_seconds: int
    logins: _containers.RepeatedScalarFieldContainer[str]
    spiffe_role: str
    def __init__(self, name: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., generation: _Optional[int] = ..., last_renewed: _Optional[float] = ..., locked: _Optional[bool] = ..., ttl_seconds: _Optional[int] = ..., logins: _Optional[_Iterable[str]] = ..., spiffe_role: _Optional[str] = ...) -> None: ...

class CreateAgentIdentityRequest(_message.Message):
    __slots__ = ("name", "roles", "ttl_seconds", "token_ttl_seconds", "logins", "spiffe_role")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOGINS_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ROLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    ttl_seconds: int
    token_ttl_seconds: int
    logins: _containers.RepeatedScalarFieldContainer[str]
    spiffe_role: str
    def __init__(self, name: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., ttl_seconds: _Optional[int] = ..., token_ttl_seconds: _Optional[int] = ..., logins: _Optional[_Iterable[str]] = ..., spiffe_role: _Optional[str] = ...) -> None: ...

class CreateAgentIdentityResponse(_message.Message):
    __slots__ = ("bootstrap_token", "token_expires")
    BOOTSTRAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRES_FIELD_NUMBER: _ClassVar[int]
    bootstrap_token: str
    token_expires: float
    def __init__(self, bootstrap_token: _Optional[str] = ..., token_expires: _Optional[float] = ...) -> None: ...

class ListAgentIdentitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgentIdentitiesResponse(_message.Message):
    __slots__ = ("identities",)
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    identities: _containers.RepeatedCompositeFieldContainer[AgentIdentity]
    def __init__(self, identities: _Optional[_Iterable[_Union[AgentIdentity, _Mapping]]] = ...) -> None: ...

class DeleteAgentIdentityRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteAgentIdentityResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetAgentIdentityLockRequest(_message.Message):
    __slots__ = ("name", "locked")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    name: str
    locked: bool
    def __init__(self, name: _Optional[str] = ..., locked: _Optional[bool] = ...) -> None: ...

class SetAgentIdentityLockResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BootstrapAgentIdentityRequest(_message.Message):
    __slots__ = ("token", "ssh_public_key", "tls_public_key_pem", "svid_public_key_pem")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SSH_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    TLS_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    SVID_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    token: str
    ssh_public_key: str
    tls_public_key_pem: str
    svid_public_key_pem: str
    def __init__(self, token: _Optional[str] = ..., ssh_public_key: _Optional[str] = ..., tls_public_key_pem: _Optional[str] = ..., svid_public_key_pem: _Optional[str] = ...) -> None: ...

class AgentIdentityCredentials(_message.Message):
    __slots__ = ("name", "ssh_certificate", "tls_certificate_pem", "tls_ca_pem", "host_ca_keys", "renewal_token", "generation", "expires", "agent_id", "svid_chain_pem", "spiffe_bundle_pem", "spiffe_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SSH_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    TLS_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    TLS_CA_PEM_FIELD_NUMBER: _ClassVar[int]
    HOST_CA_KEYS_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_TOKEN_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SVID_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_BUNDLE_PEM_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    ssh_certificate: str
    tls_certificate_pem: str
    tls_ca_pem: str
    host_ca_keys: _containers.RepeatedScalarFieldContainer[str]
    renewal_token: str
    generation: int
    expires: float
    agent_id: str
    svid_chain_pem: str
    spiffe_bundle_pem: str
    spiffe_id: str
    def __init__(self, name: _Optional[str] = ..., ssh_certificate: _Optional[str] = ..., tls_certificate_pem: _Optional[str] = ..., tls_ca_pem: _Optional[str] = ..., host_ca_keys: _Optional[_Iterable[str]] = ..., renewal_token: _Optional[str] = ..., generation: _Optional[int] = ..., expires: _Optional[float] = ..., agent_id: _Optional[str] = ..., svid_chain_pem: _Optional[str] = ..., spiffe_bundle_pem: _Optional[str] = ..., spiffe_id: _Optional[str] = ...) -> None: ...

class BootstrapAgentIdentityResponse(_message.Message):
    __slots__ = ("credentials",)
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    credentials: AgentIdentityCredentials
    def __init__(self, credentials: _Optional[_Union[AgentIdentityCredentials, _Mapping]] = ...) -> None: ...

class RenewAgentIdentityRequest(_message.Message):
    __slots__ = ("renewal_token", "generation", "ssh_public_key", "tls_public_key_pem", "svid_public_key_pem")
    RENEWAL_TOKEN_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SSH_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    TLS_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    SVID_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    renewal_token: str
    generation: int
    ssh_public_key: str
    tls_public_key_pem: str
    svid_public_key_pem: str
    def __init__(self, renewal_token: _Optional[str] = ..., generation: _Optional[int] = ..., ssh_public_key: _Optional[str] = ..., tls_public_key_pem: _Optional[str] = ..., svid_public_key_pem: _Optional[str] = ...) -> None: ...

class RenewAgentIdentityResponse(_message.Message):
    __slots__ = ("credentials",)
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    credentials: AgentIdentityCredentials
    def __init__(self, credentials: _Optional[_Union[AgentIdentityCredentials, _Mapping]] = ...) -> None: ...

class AuthenticateSPIFFERequest(_message.Message):
    __slots__ = ("svid_chain_pem", "proof_signature", "proof_time", "ssh_public_key")
    SVID_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    PROOF_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PROOF_TIME_FIELD_NUMBER: _ClassVar[int]
    SSH_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    svid_chain_pem: str
    proof_signature: bytes
    proof_time: float
    ssh_public_key: str
    def __init__(self, svid_chain_pem: _Optional[str] = ..., proof_signature: _Optional[bytes] = ..., proof_time: _Optional[float] = ..., ssh_public_key: _Optional[str] = ...) -> None: ...

class AuthenticateSPIFFEResponse(_message.Message):
    __slots__ = ("ssh_certificate", "host_ca_keys", "expires", "spiffe_id", "role", "logins")
    SSH_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    HOST_CA_KEYS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LOGINS_FIELD_NUMBER: _ClassVar[int]
    ssh_certificate: str
    host_ca_keys: _containers.RepeatedScalarFieldContainer[str]
    expires: float
    spiffe_id: str
    role: str
    logins: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ssh_certificate: _Optional[str] = ..., host_ca_keys: _Optional[_Iterable[str]] = ..., expires: _Optional[float] = ..., spiffe_id: _Optional[str] = ..., role: _Optional[str] = ..., logins: _Optional[_Iterable[str]] = ...) -> None: ...

class GetSPIFFEBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSPIFFEBundleResponse(_message.Message):
    __slots__ = ("trust_domain", "bundle_pem", "bundle_jwks")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_PEM_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_JWKS_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    bundle_pem: str
    bundle_jwks: str
    def __init__(self, trust_domain: _Optional[str] = ..., bundle_pem: _Optional[str] = ..., bundle_jwks: _Optional[str] = ...) -> None: ...

class IssueSVIDRequest(_message.Message):
    __slots__ = ("role", "workload", "ttl_seconds", "public_key_pem")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    role: str
    workload: str
    ttl_seconds: int
    public_key_pem: str
    def __init__(self, role: _Optional[str] = ..., workload: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., public_key_pem: _Optional[str] = ...) -> None: ...

class IssueSVIDResponse(_message.Message):
    __slots__ = ("spiffe_id", "svid_chain_pem", "bundle_pem", "expires")
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    SVID_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_PEM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    spiffe_id: str
    svid_chain_pem: str
    bundle_pem: str
    expires: float
    def __init__(self, spiffe_id: _Optional[str] = ..., svid_chain_pem: _Optional[str] = ..., bundle_pem: _Optional[str] = ..., expires: _Optional[float] = ...) -> None: ...

class SPIFFETrust(_message.Message):
    __slots__ = ("trust_domain", "bundle_pem", "roles", "updated")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_PEM_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    bundle_pem: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    updated: float
    def __init__(self, trust_domain: _Optional[str] = ..., bundle_pem: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., updated: _Optional[float] = ...) -> None: ...

class PutSPIFFETrustRequest(_message.Message):
    __slots__ = ("trust", "create")
    TRUST_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    trust: SPIFFETrust
    create: bool
    def __init__(self, trust: _Optional[_Union[SPIFFETrust, _Mapping]] = ..., create: _Optional[bool] = ...) -> None: ...

class PutSPIFFETrustResponse(_message.Message):
    __slots__ = ("trust",)
    TRUST_FIELD_NUMBER: _ClassVar[int]
    trust: SPIFFETrust
    def __init__(self, trust: _Optional[_Union[SPIFFETrust, _Mapping]] = ...) -> None: ...

class ListSPIFFETrustRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSPIFFETrustResponse(_message.Message):
    __slots__ = ("trusts",)
    TRUSTS_FIELD_NUMBER: _ClassVar[int]
    trusts: _containers.RepeatedCompositeFieldContainer[SPIFFETrust]
    def __init__(self, trusts: _Optional[_Iterable[_Union[SPIFFETrust, _Mapping]]] = ...) -> None: ...

class DeleteSPIFFETrustRequest(_message.Message):
    __slots__ = ("trust_domain",)
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    def __init__(self, trust_domain: _Optional[str] = ...) -> None: ...

class DeleteSPIFFETrustResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LockTarget(_message.Message):
    __slots__ = ("user", "node", "agent_identity", "login", "role", "incarnation")
    USER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    user: str
    node: str
    agent_identity: str
    login: str
    role: str
    incarnation: str
    def __init__(self, user: _Optional[str] = ..., node: _Optional[str] = ..., agent_identity: _Optional[str] = ..., login: _Optional[str] = ..., role: _Optional[str] = ..., incarnation: _Optional[str] = ...) -> None: ...

class Lock(_message.Message):
    __slots__ = ("name", "target", "reason", "created", "created_by", "expires")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    name: str
    target: LockTarget
    reason: str
    created: float
    created_by: str
    expires: float
    def __init__(self, name: _Optional[str] = ..., target: _Optional[_Union[LockTarget, _Mapping]] = ..., reason: _Optional[str] = ..., created: _Optional[float] = ..., created_by: _Optional[str] = ..., expires: _Optional[float] = ...) -> None: ...

class CreateLockRequest(_message.Message):
    __slots__ = ("target", "reason", "ttl_seconds")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    target: LockTarget
    reason: str
    ttl_seconds: int
    def __init__(self, target: _Optional[_Union[LockTarget, _Mapping]] = ..., reason: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class CreateLockResponse(_message.Message):
    __slots__ = ("lock",)
    LOCK_FIELD_NUMBER: _ClassVar[int]
    lock: Lock
    def __init__(self, lock: _Optional[_Union[Lock, _Mapping]] = ...) -> None: ...

class ListLocksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLocksResponse(_message.Message):
    __slots__ = ("locks",)
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    locks: _containers.RepeatedCompositeFieldContainer[Lock]
    def __init__(self, locks: _Optional[_Iterable[_Union[Lock, _Mapping]]] = ...) -> None: ...

class DeleteLockRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteLockResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchLocksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchLocksResponse(_message.Message):
    __slots__ = ("locks", "locking_mode", "max_staleness_seconds")
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    LOCKING_MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_STALENESS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    locks: _containers.RepeatedCompositeFieldContainer[Lock]
    locking_mode: str
    max_staleness_seconds: float
    def __init__(self, locks: _Optional[_Iterable[_Union[Lock, _Mapping]]] = ..., locking_mode: _Optional[str] = ..., max_staleness_seconds: _Optional[float] = ...) -> None: ...

class ExportKRLRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportKRLResponse(_message.Message):
    __slots__ = ("krl", "revoked")
    KRL_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    krl: bytes
    revoked: int
    def __init__(self, krl: _Optional[bytes] = ..., revoked: _Optional[int] = ...) -> None: ...

class WorkloadRule(_message.Message):
    __slots__ = ("name", "role", "node_labels", "unix_uid", "unix_gid", "unix_user", "exe", "ttl_seconds")
    class NodeLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NODE_LABELS_FIELD_NUMBER: _ClassVar[int]
    UNIX_UID_FIELD_NUMBER: _ClassVar[int]
    UNIX_GID_FIELD_NUMBER: _ClassVar[int]
    UNIX_USER_FIELD_NUMBER: _ClassVar[int]
    EXE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    node_labels: _containers.ScalarMap[str, str]
    unix_uid: int
    unix_gid: int
    unix_user: str
    exe: str
    ttl_seconds: int
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., node_labels: _Optional[_Mapping[str, str]] = ..., unix_uid: _Optional[int] = ..., unix_gid: _Optional[int] = ..., unix_user: _Optional[str] = ..., exe: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class PutWorkloadRuleRequest(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: WorkloadRule
    def __init__(self, rule: _Optional[_Union[WorkloadRule, _Mapping]] = ...) -> None: ...

class PutWorkloadRuleResponse(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: WorkloadRule
    def __init__(self, rule: _Optional[_Union[WorkloadRule, _Mapping]] = ...) -> None: ...

class ListWorkloadRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkloadRulesResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[WorkloadRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[WorkloadRule, _Mapping]]] = ...) -> None: ...

class DeleteWorkloadRuleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteWorkloadRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkloadFacts(_message.Message):
    __slots__ = ("pid", "uid", "gid", "user", "exe")
    PID_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    EXE_FIELD_NUMBER: _ClassVar[int]
    pid: int
    uid: int
    gid: int
    user: str
    exe: str
    def __init__(self, pid: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., user: _Optional[str] = ..., exe: _Optional[str] = ...) -> None: ...

class IssueWorkloadSVIDsRequest(_message.Message):
    __slots__ = ("facts", "public_key_pem")
    FACTS_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    facts: WorkloadFacts
    public_key_pem: str
    def __init__(self, facts: _Optional[_Union[WorkloadFacts, _Mapping]] = ..., public_key_pem: _Optional[str] = ...) -> None: ...

class WorkloadSVID(_message.Message):
    __slots__ = ("rule", "spiffe_id", "svid_chain_pem", "expires")
    RULE_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    SVID_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    rule: str
    spiffe_id: str
    svid_chain_pem: str
    expires: float
    def __init__(self, rule: _Optional[str] = ..., spiffe_id: _Optional[str] = ..., svid_chain_pem: _Optional[str] = ..., expires: _Optional[float] = ...) -> None: ...

class IssueWorkloadSVIDsResponse(_message.Message):
    __slots__ = ("svids", "trust_domain", "bundle_pem")
    SVIDS_FIELD_NUMBER: _ClassVar[int]
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_PEM_FIELD_NUMBER: _ClassVar[int]
    svids: _containers.RepeatedCompositeFieldContainer[WorkloadSVID]
    trust_domain: str
    bundle_pem: str
    def __init__(self, svids: _Optional[_Iterable[_Union[WorkloadSVID, _Mapping]]] = ..., trust_domain: _Optional[str] = ..., bundle_pem: _Optional[str] = ...) -> None: ...

class RecordingInfo(_message.Message):
    __slots__ = ("session_id", "node_id", "node_name", "user", "login", "started", "ended", "size", "sha256", "truncated", "complete")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    node_id: str
    node_name: str
    user: str
    login: str
    started: float
    ended: float
    size: int
    sha256: str
    truncated: bool
    complete: bool
    def __init__(self, session_id: _Optional[str] = ..., node_id: _Optional[str] = ..., node_name: _Optional[str] = ..., user: _Optional[str] = ..., login: _Optional[str] = ..., started: _Optional[float] = ..., ended: _Optional[float] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., truncated: _Optional[bool] = ..., complete: _Optional[bool] = ...) -> None: ...

class RecordingChunk(_message.Message):
    __slots__ = ("info", "offset", "data", "last", "session_id", "sha256")
    INFO_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    info: RecordingInfo
    offset: int
    data: bytes
    last: bool
    session_id: str
    sha256: str
    def __init__(self, info: _Optional[_Union[RecordingInfo, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ..., session_id: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class RecordingUploadStatus(_message.Message):
    __slots__ = ("stored", "complete")
    STORED_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    stored: int
    complete: bool
    def __init__(self, stored: _Optional[int] = ..., complete: _Optional[bool] = ...) -> None: ...

class ListSessionRecordingsRequest(_message.Message):
    __slots__ = ("user", "node", "since")
    USER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    user: str
    node: str
    since: float
    def __init__(self, user: _Optional[str] = ..., node: _Optional[str] = ..., since: _Optional[float] = ...) -> None: ...

class ListSessionRecordingsResponse(_message.Message):
    __slots__ = ("recordings",)
    RECORDINGS_FIELD_NUMBER: _ClassVar[int]
    recordings: _containers.RepeatedCompositeFieldContainer[RecordingInfo]
    def __init__(self, recordings: _Optional[_Iterable[_Union[RecordingInfo, _Mapping]]] = ...) -> None: ...

class GetSessionRecordingRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetSessionRecordingResponse(_message.Message):
    __slots__ = ("info", "data")
    INFO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    info: RecordingInfo
    data: bytes
    def __init__(self, info: _Optional[_Union[RecordingInfo, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...
