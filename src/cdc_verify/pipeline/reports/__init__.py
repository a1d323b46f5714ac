"""The report folder backfill and replay write: its files, in one place."""
