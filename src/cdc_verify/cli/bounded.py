"""`backfill` and `replay`: bounded checks that write a report directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cdc_verify.cli.command import Command
from cdc_verify.cli.options import (
    UNUSED_STATE_HELP,
    URL_FORMS,
    capture_file_option,
    command_settings,
    common_options,
    progress_option,
    report_out_option,
    setting_values,
    verify_options,
)
from cdc_verify.cli.runtime import load_consumer, progress_bar, require_streams, setup_logging
from cdc_verify.config.roles import require_stream_servers
from cdc_verify.config.servers import Role


@click.command(cls=Command)
@common_options(
    f"Redis URL of the two streams, unless each has its own server: {URL_FORMS}",
    UNUSED_STATE_HELP,
)
@report_out_option()
@progress_option()
def backfill(config: Path | None, out: Path, progress: bool | None, **kwargs: Any) -> None:
    """Bounded check of what both streams hold now (read-only, no consumer group)."""
    from cdc_verify.pipeline.runners.backfill import run_backfill
    from cdc_verify.terminal import print_summary

    settings = command_settings(config, **setting_values(kwargs))
    setup_logging(settings)
    consumer = load_consumer(settings)
    require_stream_servers(settings, "backfill", Role.PRODUCTION, Role.SISTER)
    production, sister = settings.server(Role.PRODUCTION), settings.server(Role.SISTER)
    require_streams([(production, [settings.production]), (sister, [settings.sister])])
    with progress_bar(progress) as bar:
        task = bar.add_task("verifying", total=None)
        summary = run_backfill(
            settings, consumer, out,
            on_start=lambda total: bar.update(task, total=total),
            on_progress=lambda n: bar.advance(task, n),
        )  # fmt: skip
    print_summary(summary, out, settings.grace)


@click.command(cls=Command)
@capture_file_option("--production", "capture file of the production stream")
@capture_file_option("--sister", "capture file of the sister stream")
@report_out_option()
@verify_options
@progress_option()
def replay(production: Path, sister: Path, out: Path, config: Path | None,
           progress: bool | None, **kwargs: Any) -> None:  # fmt: skip
    """Verify two capture files, on event time, with the same verdicts as backfill."""
    from cdc_verify.pipeline.capture.format import CaptureError
    from cdc_verify.pipeline.runners.replay import run_replay
    from cdc_verify.terminal import print_summary

    settings = command_settings(config, **setting_values(kwargs))
    setup_logging(settings)
    consumer = load_consumer(settings)
    with progress_bar(progress) as bar:
        task = bar.add_task("replaying", total=None)
        try:
            summary = run_replay(settings, consumer, production, sister, out,
                                 on_progress=lambda n: bar.advance(task, n))  # fmt: skip
        except CaptureError as exc:
            raise click.ClickException(str(exc)) from exc
    print_summary(summary, out, settings.grace)
