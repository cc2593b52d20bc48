"""mwplu-gateway: one GraphQL graph over the MWPLU v1 and v2 chat stores."""

__version__ = "0.1.0"
