"""The auth service: certificate authorities, identities, the gRPC API and its guard."""
