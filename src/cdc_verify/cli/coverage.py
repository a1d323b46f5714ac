"""`coverage` (which shapes of production event were verified) and `cases` (the fewest
events that cover them, as test vectors); docs/coverage.md."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from cdc_verify.cli.command import Command, Topic
from cdc_verify.cli.options import (
    capture_file_option,
    command_settings,
    config_option,
    entity_option,
    group_option,
    json_option,
    live_flag_given,
    option,
    report_option,
    setting_values,
    state_redis_options,
    verify_options,
)
from cdc_verify.cli.runtime import load_consumer, setup_logging
from cdc_verify.config.roles import require_state_server
from cdc_verify.config.servers import Role
from cdc_verify.core.coverage import STATUSES
from cdc_verify.escaping import json_visible

log = logging.getLogger("cdc_verify")


@click.command(cls=Command)
@state_redis_options("the live worker counts shapes on")
@group_option()
@report_option("the --out directory of a backfill or replay, instead of the live worker's counts")
@entity_option("this entity only, e.g. comment")
@option(
    "--status",
    type=click.Choice(list(STATUSES)),
    topic=Topic.SCOPE,
    help="only the shapes and parts of this status",
)
@option(
    "--limit",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    topic=Topic.OUTPUT,
    help="shapes, and combinations to test next, to list (0: all); every part is listed",
)
@json_option("print the figures, shapes and parts as JSON")
@config_option("the redis_* settings, group and key_prefix")
def coverage(report: Path | None, entity: str | None, status: str | None, limit: int,
             as_json: bool, config: Path | None, **kwargs: Any) -> None:  # fmt: skip
    """Which kinds (shapes) of production event were verified: the live worker's counts on
    its state server, or a report directory's; see docs/coverage.md.

    Exit 0, or 2 when there is no coverage to show (the reason is printed).
    """
    from cdc_verify.core.coverage import CoverageUnavailable
    from cdc_verify.coverage.live import read_live
    from cdc_verify.coverage.report_dir import read_report
    from cdc_verify.coverage.view import print_report

    if report is not None:
        flag = live_flag_given(kwargs, {"redis_url": "--redis", "state_redis_url": "--state-redis"})
        if flag:
            raise click.UsageError(
                f"--report shows a report directory; {flag} is for the live worker's "
                "counts: give one or the other"
            )
    source = None
    try:
        if report is not None:
            found = read_report(report)
        else:
            settings = command_settings(config, **kwargs)
            require_state_server(settings, "coverage", or_report=True)
            found = read_live(settings)
            source = (
                f"Counted by the live workers of group {settings.group!r} on "
                f"{settings.server(Role.STATE).redacted_url()}, since their state began."
            )
    except CoverageUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    found = found.only(entity, status)
    if as_json:
        click.echo(json_visible(json.dumps(found.as_json(), indent=2, ensure_ascii=False)))
    else:
        print_report(found, limit, source)


@click.command(cls=Command)
@capture_file_option(
    "--production", "capture file of the production stream: the events the cases are taken from"
)
@capture_file_option(
    "--sister", "capture file of the sister stream, to cover every mismatch group too",
    required=False,
)  # fmt: skip
@option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    topic=Topic.OUTPUT,
    help="directory to write cases.json into (created if missing)",
)
@option(
    "--redact",
    "redact_pointers",
    multiple=True,
    topic=Topic.OUTPUT,
    help="JSON pointer whose value is replaced in every case, e.g. /body or /awards/*/award_id; "
    "repeatable",
)
@verify_options
def cases(production: Path, sister: Path | None, out: Path, redact_pointers: tuple[str, ...],
          config: Path | None, **kwargs: Any) -> None:  # fmt: skip
    """The fewest production events that cover every shape (and, with --sister, every
    mismatch group), redacted, as test vectors; see docs/coverage.md."""
    from cdc_verify.coverage.cases import CASES_FILE, write_cases
    from cdc_verify.pipeline.capture.format import CaptureError

    settings = command_settings(config, **setting_values(kwargs))
    setup_logging(settings)
    consumer = load_consumer(settings)
    if not redact_pointers:
        log.warning(
            "no --redact: %s gets production data as it is (payloads, decoded events, the "
            "values in shapes' parts, error texts); give --redact POINTER for every path that "
            "must not leave production", out / CASES_FILE,
        )  # fmt: skip
    try:
        figures = write_cases(settings, consumer, production, sister, out, redact_pointers)
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(
        f"{figures['events']:,} production events, {figures['shapes']:,} shapes, "
        f"{figures['groups']:,} mismatch groups: {figures['cases']:,} cases in "
        f"{out / CASES_FILE}"
    )
