"""The auth service: certificate authorities, identities, the gRPC API and its guard.

- ``server.py``: the process, wiring only (backend, CAs, listener, local identities);
- ``rpc/``: grpclib's method table, the per-RPC guard, rate limits, TLS, metrics;
- ``services/``: the RPCs, one module per group, named after what they do;
- ``stores/``: typed records in the backend and their in-memory mirrors;
- ``crypto/``: the CAs and what they sign (certificates, KRLs, agent credentials);
- ``rbac.py`` and ``auditing.py``: role evaluation and the audit handle, used by all.
"""
