"""Go / no-go: `cdc-verify gate`, GET /api/gate and the status page's banner.

criteria.py holds the rule; report_dir.py (`judge_report`) and live.py (`judge_live`)
measure a bounded run's summary.json and the live worker's counters and judge them;
render.py prints the answer.
"""
