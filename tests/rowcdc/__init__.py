"""Row CDC writers for the Postgres tests: the plan (plan.py), the tables (schema.sql,
schema.py), production's Python writer (pywriter.py) and the sister's Go writer
(gowriter/). README.md says how they fit together."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

GOWRITER = Path(__file__).with_name("gowriter")


def build_gowriter(out: Path) -> Path:
    """`go build` of the sister's writer into `out`: the Go toolchain is required (the
    tests fail without it), and the module proxy or cache for pgx (go.sum pins it). About
    30 s cold, a second once Go's build cache has it."""
    go = shutil.which("go")
    assert go, "Go is required: the sister is written by a real Go driver (pgx)"
    done = subprocess.run([go, "build", "-o", str(out), "."], cwd=GOWRITER,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out
