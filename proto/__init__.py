"""The shared layer: the API contract, its generated code, the gRPC client layer and the
error vocabulary. Every other package imports from here; this package imports none of them."""

__version__ = "0.1.0"
