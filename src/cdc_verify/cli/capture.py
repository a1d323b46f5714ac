"""`capture`: one stream, byte-exact, to a compressed file."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from cdc_verify.cli.command import Command, Topic
from cdc_verify.cli.options import (
    UNUSED_STATE_HELP,
    URL_FORMS,
    command_settings,
    config_option,
    option,
    progress_option,
    redis_options,
)
from cdc_verify.cli.runtime import progress_bar, redis_client, require_streams
from cdc_verify.config.roles import capture_role, require_stream_servers
from cdc_verify.config.servers import Role
from cdc_verify.escaping import terminal_markup


@click.command(cls=Command)
@redis_options(
    f"Redis URL of the stream, unless --side's role has a server of its own: {URL_FORMS}",
    tuple(Role),
    UNUSED_STATE_HELP,
)
@option("--stream", required=True, topic=Topic.STREAMS, help="stream key to capture")
@option(
    "--side",
    type=click.Choice([Role.PRODUCTION.value, Role.SISTER.value]),
    topic=Topic.STREAMS,
    help="whose server to read the stream from (default: production; sister when only "
    "--sister-redis is given)",
)
@option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    topic=Topic.OUTPUT,
    help="capture file to write (its directory must exist)",
)
@option(
    "--from",
    "start",
    topic=Topic.SCOPE,
    help="first entry: an entry id, epoch ms or ISO 8601 time (default: the first entry)",
)
@option(
    "--to",
    "end",
    topic=Topic.SCOPE,
    help="last entry: an entry id, epoch ms or ISO 8601 time "
    "(default: the last entry when the capture starts)",
)
@config_option("the redis_* settings")
@progress_option()
def capture(stream: str, side: str | None, out: Path, start: str | None, end: str | None,
            config: Path | None, progress: bool | None, **kwargs: Any) -> None:  # fmt: skip
    """Capture one stream, byte-exact, to a compressed file (docs/commands.md: capture)."""
    from cdc_verify.pipeline.capture.format import CaptureError
    from cdc_verify.pipeline.capture.redis_capture import capture_stream, parse_bound

    settings = command_settings(config, **kwargs)
    try:
        bounds = parse_bound(start, end=False), parse_bound(end, end=True)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if not out.parent.is_dir():
        raise click.BadParameter(f"directory {out.parent} does not exist", param_hint="--out")
    role = capture_role(settings, side)
    require_stream_servers(settings, "capture", role)
    server = settings.server(role)
    with ExitStack() as stack:
        require_streams([(server, [stream])])
        client = stack.enter_context(redis_client(server))
        bar = stack.enter_context(progress_bar(progress))
        task = bar.add_task(f"capturing {terminal_markup(stream)}", total=None)
        try:
            count = capture_stream(
                client, stream, out, *bounds, source=server.url or "",
                on_start=lambda total: bar.update(task, total=total),
                on_progress=lambda n: bar.advance(task, n),
            )  # fmt: skip
        except CaptureError as exc:  # an entry past the format's block bound
            raise click.ClickException(str(exc)) from exc
    click.echo(f"captured {count:,} entries of {stream} on {server.redacted_url()} into {out} "
               f"({out.stat().st_size:,} bytes)")  # fmt: skip
