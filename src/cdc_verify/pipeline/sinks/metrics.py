"""Prometheus metrics of a verifier process (names per Prometheus conventions)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from cdc_verify.config.servers import Role
from cdc_verify.core.breakdown import OPS
from cdc_verify.core.coverage import ShapeStatus
from cdc_verify.core.outcome import Outcome, OutcomeKind
from cdc_verify.pipeline.sinks.base import Sink
from cdc_verify.schemas.models import Coverage
from cdc_verify.schemas.verdicts import STREAM_SIDES, Side, Verdict

SIDE_LABELS = tuple(side.value for side in STREAM_SIDES)  # the `side` label's values
# Members read per outcome, as module names (through its class, an Enum member costs
# about 50 ns on Python 3.11).
_LATE, _OUT_OF_SCOPE, _TOMBSTONE = OutcomeKind.LATE, OutcomeKind.OUT_OF_SCOPE, OutcomeKind.TOMBSTONE
_UNDECODABLE = Verdict.UNDECODABLE


class VerifierMetrics(Sink):
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        ignore_paths: Iterable[str] = (),
        entities: Iterable[str] = ("comment", "account"),
    ) -> None:
        """`entities`: whose series exist from the start (at 0), so that rate() sees the
        first verdict of each; others appear when their first verdict comes."""
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_read = Counter(
            "cdc_verify_events_read", "Stream entries read, per side.", ["side"], registry=r
        )
        self.verdicts = Counter(
            "cdc_verify_verdicts",
            "Verdict records written, per verdict, entity and op (the write endpoint).",
            ["verdict", "entity", "op"],
            registry=r,
        )
        self.out_of_scope = Counter(
            "cdc_verify_out_of_scope",
            "Production events outside --scope whose twin did not come: no verdict.",
            ["entity", "op"],
            registry=r,
        )
        self.tombstones = Counter(
            "cdc_verify_tombstones",
            "Entries that stand for no change (Debezium tombstones): no verdict.",
            ["entity"],
            registry=r,
        )
        self.ignored_differences = Counter(
            "cdc_verify_ignored_differences",
            "Differences an --ignore-path suppressed, per path.",
            ["path"],
            registry=r,
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
        self.spilled_bytes = Gauge(
            "cdc_verify_spilled_bytes",
            "Bytes of big waiting entries kept in spill files rather than memory "
            "(--waiting-max-bytes).",
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
        self.records_reduced = Counter(
            "cdc_verify_records_reduced",
            "Records committed reduced: the state server refused them whole.",
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
        self.server_data_lost = Counter(
            "cdc_verify_server_data_lost",
            "Times a server was found to have lost the worker's data (restarted without "
            "persistence, or flushed), per role.",
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
        self.shapes = Gauge(
            "cdc_verify_shapes",
            "Shapes of production event, per entity and coverage status (verified, "
            "mismatched, never_verified), since the worker's state began (docs/coverage.md).",
            ["entity", "status"],
            registry=r,
        )
        self.shape_coverage = Gauge(
            "cdc_verify_shape_coverage_ratio",
            "Verified shapes over the shapes production sent, per entity (docs/coverage.md).",
            ["entity"],
            registry=r,
        )
        self.ready = Gauge(
            "cdc_verify_ready",
            "1 while the worker is connected, has rebuilt its state and is reading.",
            registry=r,
        )
        for role in Role:  # production, sister, state
            self.redis_up.labels(role=role.value)
            self.server_data_lost.labels(role=role.value)  # at 0: increase() sees the first loss
        for side in SIDE_LABELS:
            for metric in (self.events_read, self.decode_errors, self.late_arrivals):
                metric.labels(side=side)
            self.pending_joins.labels(side=side)
            self.consumer_lag.labels(side=side)
        # Label children bound once: .labels() per outcome costs more than the count.
        self._verdict: dict[tuple[Verdict, str, str], Any] = {}
        self._decode_error = {s: self.decode_errors.labels(side=s) for s in SIDE_LABELS}
        for path in ignore_paths:
            self.ignored_differences.labels(path=path)
        for entity in entities:
            for op in OPS:
                self.out_of_scope.labels(entity=entity, op=op)
                for v in Verdict:
                    self._verdict[v, entity, op] = self.verdicts.labels(v.value, entity, op)

    def set_coverage(self, coverage: Coverage) -> None:
        """The shape coverage the state server holds now (read by the worker's
        housekeeping)."""
        for entity, figures in coverage.by_entity.items():
            for status in ShapeStatus:
                count = getattr(figures, status.value)
                self.shapes.labels(entity=entity, status=status.value).set(count)
            if figures.ratio is not None:
                self.shape_coverage.labels(entity=entity).set(figures.ratio)

    def read(self, side: str, count: int) -> None:
        if count:
            self.events_read.labels(side=side).inc(count)

    def add(self, outcomes: Iterable[Outcome]) -> None:
        # Verdicts counted per (verdict, entity, op) first, then each counter bumped once:
        # a counter's inc() (its lock) cost more than the rest of an outcome's counting.
        verdicts: dict[tuple[Verdict, str, str], int] = {}
        for outcome in outcomes:
            if outcome.kind is _LATE:
                self.late_arrivals.labels(side=outcome.settles[0].side.value).inc()
                continue
            record = outcome.record
            if record is None:
                if outcome.kind is _OUT_OF_SCOPE:
                    entity, op = outcome.entity_op
                    self.out_of_scope.labels(entity=entity, op=op).inc()
                elif outcome.kind is _TOMBSTONE:
                    self.tombstones.labels(entity=outcome.entity_op[0]).inc()
                else:
                    self.skipped.inc(len(outcome.settles))
                continue
            entity, op = outcome.entity_op
            key = (record.verdict, entity, op)
            verdicts[key] = verdicts.get(key, 0) + 1
            if record.reduced is not None:
                self.records_reduced.inc()
            for path, count in (record.ignored or {}).items():
                self.ignored_differences.labels(path=path).inc(count)
            if record.verdict is _UNDECODABLE and record.side is not None:
                sides = SIDE_LABELS if record.side is Side.BOTH else (record.side.value,)
                for side in sides:
                    self._decode_error[side].inc()
        for key, count in verdicts.items():
            child = self._verdict.get(key)
            if child is None:
                child = self._verdict[key] = self.verdicts.labels(key[0].value, *key[1:])
            child.inc(count)
