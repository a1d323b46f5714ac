"""The API's routes, a module per group, each an APIRouter whose handlers read through
the one `Context` (api/context.py); api/app.py includes them in this order:

verdicts.py  /api/alerts, /api/events/{event_id}, /api/groups
coverage.py  /api/coverage
gate.py      /api/gate
status.py    /api/status (what the status page shows)
probes.py    /metrics, /healthz, /readyz
pages.py     / (the status page), /docs (Swagger UI, served from the package)
"""
