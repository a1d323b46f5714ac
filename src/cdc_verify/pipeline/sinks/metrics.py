"""Prometheus metrics of a verifier process (names per Prometheus conventions)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from cdc_verify.pipeline.core.outcome import Outcome, OutcomeKind
from cdc_verify.pipeline.sinks.base import Sink
from cdc_verify.schemas.verdicts import Side, Verdict

SIDES = (Side.PRODUCTION.value, Side.SISTER.value)


class VerifierMetrics(Sink):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_read = Counter(
            "cdc_verify_events_read", "Stream entries read, per side.", ["side"], registry=r
        )
        self.verdicts = Counter(
            "cdc_verify_verdicts", "Verdict records written, per verdict.", ["verdict"], registry=r
        )
        self.decode_errors = Counter(
            "cdc_verify_decode_errors",
            "Events the legacy consumer could not decode, per side.",
            ["side"],
            registry=r,
        )
        self.late_arrivals = Counter(
            "cdc_verify_late_arrivals",
            "Events that arrived after their gap verdict, per side.",
            ["side"],
            registry=r,
        )
        self.pending_joins = Gauge(
            "cdc_verify_pending_joins",
            "Events waiting for their partner, per side they arrived on.",
            ["side"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "cdc_verify_consumer_lag_seconds",
            "Age of the newest stream entry minus age of the newest one read, per side.",
            ["side"],
            registry=r,
        )
        self.skipped = Counter(
            "cdc_verify_skipped_before_start",
            "Entries from before the worker's start horizon, used only as partners.",
            registry=r,
        )
        self.redis_reconnects = Counter(
            "cdc_verify_redis_reconnects",
            "Times the worker lost Redis and reconnected.",
            registry=r,
        )
        self.redis_up = Gauge(
            "cdc_verify_redis_up",
            "1 while the server of this role (production, sister, state) answers the worker.",
            ["role"],
            registry=r,
        )
        self.clock_skew = Gauge(
            "cdc_verify_clock_skew_seconds",
            "How far the sister stream's entry-id clock runs ahead of production's.",
            registry=r,
        )
        self.open_alerts = Gauge(
            "cdc_verify_open_alerts",
            "Missing-event alerts open now (gaps no late arrival has resolved).",
            registry=r,
        )
        self.oldest_open_alert_age = Gauge(
            "cdc_verify_oldest_open_alert_age_seconds",
            "Age of the oldest open missing-event alert; 0 when none is open.",
            registry=r,
        )
        self.ready = Gauge(
            "cdc_verify_ready",
            "1 while the worker is connected, has rebuilt its state and is reading.",
            registry=r,
        )
        for role in ("production", "sister", "state"):
            self.redis_up.labels(role=role)
        for side in SIDES:
            for metric in (self.events_read, self.decode_errors, self.late_arrivals):
                metric.labels(side=side)
            self.pending_joins.labels(side=side)
            self.consumer_lag.labels(side=side)
        # Label children bound once: .labels() per outcome costs more than the count.
        self._verdict = {v: self.verdicts.labels(verdict=v.value) for v in Verdict}
        self._decode_error = {s: self.decode_errors.labels(side=s) for s in SIDES}

    def read(self, side: str, count: int) -> None:
        if count:
            self.events_read.labels(side=side).inc(count)

    def add(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.kind is OutcomeKind.LATE:
                self.late_arrivals.labels(side=outcome.settles[0].side.value).inc()
                continue
            record = outcome.record
            if record is None:
                self.skipped.inc(len(outcome.settles))
                continue
            self._verdict[record.verdict].inc()
            if record.verdict is Verdict.UNDECODABLE and record.side is not None:
                sides = SIDES if record.side is Side.BOTH else (record.side.value,)
                for side in sides:
                    self._decode_error[side].inc()
