"""Go / no-go: `cdc-verify gate`, GET /api/gate and the status page's banner.

criteria.py holds the rule; report_dir.py and live.py measure a bounded run's
summary.json and the live worker's counters; render.py prints the answer.
"""
