"""The `cdc-verify` command line (docs/commands.md describes every command and flag).

A module per group of commands, each registered here on `main`.
"""

from __future__ import annotations

import click

from cdc_verify.cli import alerts, bounded, capture, coverage, demo, gate, run
from cdc_verify.cli.command import RedisErrorsAsMessages
from cdc_verify.cli.config_cmd import config
from cdc_verify.cli.simulate_cmd import simulate
from cdc_verify.native import HOT_PATH


@click.group(
    cls=RedisErrorsAsMessages,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(
    package_name="cdc-verify", message=f"%(prog)s, version %(version)s\nhot path: {HOT_PATH}"
)
def main() -> None:
    """Verify that a sister CDC stream says what the production stream says.

    Every event is decoded with the legacy consumer, joined on event_id, compared,
    and given one verdict: match, mismatch, race, undecodable, missing_in_sister or
    missing_in_production (plus duplicate and malformed records).
    """


main.add_command(demo.demo)
main.add_command(simulate)
main.add_command(run.run)
main.add_command(run.check)
main.add_command(bounded.backfill)
main.add_command(bounded.replay)
main.add_command(capture.capture)
main.add_command(alerts.alerts)
main.add_command(gate.gate)
main.add_command(coverage.coverage)
main.add_command(coverage.cases)
main.add_command(config)
