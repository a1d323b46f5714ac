"""`gate`: go / no-go, from the live worker's counters or a report directory."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from cdc_verify.cli.command import Command, Topic
from cdc_verify.cli.options import (
    DURATION,
    command_settings,
    config_option,
    entity_option,
    group_option,
    json_option,
    live_flag_given,
    option,
    report_option,
    setting,
    state_redis_options,
)
from cdc_verify.config.roles import require_state_server


class _Rate(click.ParamType):
    """--max-mismatch-rate 0.001 or 0.1%."""

    name = "rate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from cdc_verify.gate.criteria import parse_rate

        if isinstance(value, float):
            return value
        try:
            return parse_rate(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _gate_ops() -> list[str]:
    from cdc_verify.gate.criteria import OP_VALUES

    return list(OP_VALUES)


CRITERIA = Topic.CRITERIA


@click.command(cls=Command)
@state_redis_options("the worker keeps its counters on")
@group_option()
@report_option("gate the output directory of a backfill or replay instead of the live counters")
@setting(
    "--since",
    "gate_since",
    type=DURATION,
    topic=Topic.SCOPE,
    help="the window of live counters to gate, e.g. 10m, 2h, 1d; not with --report",
)
@setting(
    "--max-mismatch-rate",
    "gate_max_mismatch_rate",
    type=_Rate(),
    topic=CRITERIA,
    help="largest share of events with a mismatch verdict: 0.001 or 0.1%",
)
@setting("--max-undecodable", "gate_max_undecodable", type=int, topic=CRITERIA,
         help="most undecodable verdicts")  # fmt: skip
@setting(
    "--max-gaps",
    "gate_max_gaps",
    type=int,
    topic=CRITERIA,
    help="most gaps (missing_in_sister + missing_in_production)",
)
@setting(
    "--min-events",
    "gate_min_events",
    type=int,
    topic=CRITERIA,
    help="fewest events (primary verdicts) to decide on; fewer: cannot decide (exit 2)",
)
@option(
    "--min-coverage",
    type=_Rate(),
    topic=CRITERIA,
    help="fewest verified shapes of all production sent (docs/coverage.md): 0.9 or 90%; "
    "live, counted since the worker's state began, not over --since; default: not judged",
)
@entity_option("gate this entity only, e.g. comment")
@option("--op", type=click.Choice(_gate_ops()), topic=Topic.SCOPE,
        help="gate this op (write endpoint) only")  # fmt: skip
@json_option("print the answer as a JSON object")
@config_option("the redis_* settings, group, key_prefix and the gate_* settings")  # fmt: skip
def gate(report: Path | None, min_coverage: float | None, entity: str | None, op: str | None,
         as_json: bool, config: Path | None, **kwargs: Any) -> None:  # fmt: skip
    """Go / no-go: may the new service take more traffic? Exit 0 go, 1 no-go, 2 cannot decide.

    Measures the live worker's durable counters over --since (or a report directory)
    against each criterion; see docs/rollouts.md.
    """
    from cdc_verify.gate.criteria import Criteria, Endpoint
    from cdc_verify.gate.live import StateServer, judge_live
    from cdc_verify.gate.render import print_json, print_table
    from cdc_verify.gate.report_dir import judge_report

    if report is not None:
        live = {"redis_url": "--redis", "state_redis_url": "--state-redis", "gate_since": "--since"}
        flag = live_flag_given(kwargs, live)
        if flag:
            raise click.UsageError(
                f"--report gates a report directory; {flag} is for the live "
                "counters: give one or the other"
            )
    settings = command_settings(config, **kwargs)
    criteria = Criteria.from_settings(settings, min_coverage=min_coverage)
    scope = Endpoint(entity, op)
    if report is not None:
        answer = judge_report(report, criteria, scope)
    else:
        require_state_server(settings, "gate", or_report=True)
        answer = asyncio.run(judge_live(settings, StateServer(settings), criteria, scope))
    if not answer.measured and not as_json:
        click.echo(f"CANNOT DECIDE: {answer.reason}", err=True)
        sys.exit(answer.decision.exit_status)
    (print_json if as_json else print_table)(answer)
    sys.exit(answer.decision.exit_status)
