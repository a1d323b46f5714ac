"""The files of a report folder (`backfill` and `replay --out DIR`, runners/bounded.py)."""

from __future__ import annotations

REPORT_FILES = (
    "verdicts.jsonl", "summary.json", "groups.json", "coverage.json", "summary.md", "report.html"
)  # fmt: skip
