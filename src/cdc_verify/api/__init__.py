"""The worker's HTTP server: alerts, verdicts, groups, probes, metrics and a status page."""
