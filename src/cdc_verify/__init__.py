"""cdc-verify: CDC event-stream verification through the legacy consumer."""
