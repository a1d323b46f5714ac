"""`demo`: two embedded Redis servers, simulated streams with every fault, a live report."""

from __future__ import annotations

import sys

import click

from cdc_verify.cli.options import Duration
from cdc_verify.logs import configure_logging


@click.command()
@click.option(
    "--events",
    type=click.IntRange(100, 10_000_000),
    default=20_000,
    show_default=True,
    help="changes to generate (comments and accounts), each written to both streams, with "
    "faults injected",
)
@click.option(
    "--rate",
    type=click.FloatRange(10, 100_000),
    default=2_000,
    show_default=True,
    help="events per second written to each stream",
)
@click.option(
    "--grace",
    type=Duration(0.2, 60),
    default=2.0,
    show_default=True,
    help="seconds a partner may lag before it is a gap (late deliveries are injected past it)",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="seed of the generated changes and faults: the same seed, the same run",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="serve the status page, API and /metrics on 127.0.0.1:PORT (0: off)",
)
@click.option(
    "--linger",
    type=Duration(0, 86_400),
    default=0,
    show_default=True,
    help="seconds to keep the worker and status page up after the run (Ctrl-C ends it)",
)
def demo(events: int, rate: float, grace: float, seed: int, http_port: int, linger: float) -> None:
    """Two embedded Redis servers + simulated streams with every fault + live report.

    Ctrl-C (or SIGTERM, SIGHUP) during --linger ends it and shows the summary; during
    the run it stops the run. The last line says PASS or FAIL."""
    from cdc_verify.demo import run_demo

    configure_logging("WARNING")
    sys.exit(run_demo(events=events, rate=rate, grace=grace, seed=seed, http_port=http_port,
                      linger=linger))  # fmt: skip
