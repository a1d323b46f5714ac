"""Which runner pulls in which parts: the offline ones stay offline."""

from __future__ import annotations

import subprocess
import sys


def test_an_offline_replay_imports_no_redis_prometheus_or_faust():
    # replay reads files: its import graph must not pull the live engines' pieces in.
    code = (
        "import sys, cdc_verify.pipeline.runners.replay\n"
        "heavy = ('redis', 'prometheus_client', 'faust', 'fastapi', 'uvicorn')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith('cdc_verify.pipeline.redis')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
