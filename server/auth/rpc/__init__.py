"""RPC plumbing: grpclib's method table, the per-RPC guard, rate limits, the listener's TLS
and metrics."""
