"""cdc-verify: CDC event-stream verification through the legacy consumer."""

__version__ = "0.1.0"
