"""The RPCs, one module per group, each named after what its RPCs do; they check, then use
the stores and the crypto."""
