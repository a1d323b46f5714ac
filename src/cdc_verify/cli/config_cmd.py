"""`cdc-verify config`: the settings `run` would use with these flags, and where each
came from (flag, environment, file, default), with every secret hidden."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from cdc_verify.cli.options import SettingOption, command_settings, setting_values
from cdc_verify.cli.run import run
from cdc_verify.config.servers import redact
from cdc_verify.config.settings import Settings, Source, setting_sources
from cdc_verify.escaping import json_visible, visible

HIDDEN = "***"  # a secret (a password, the HTTP token) that is set
VALUE_WIDTH = 40  # the value column's; a longer value pushes its source along


def _shown(settings: Settings, field: str, dumped: Any) -> Any:
    """A setting's value as printed (`dumped`: as JSON): a secret hidden, a URL without its
    passwords; a password file shows its path only (it is never read here)."""
    if isinstance(getattr(settings, field), SecretStr):
        return HIDDEN
    if field.endswith("_url") and isinstance(dumped, str):
        return redact(dumped)
    return dumped


def _where(source: Source, flag: str | None) -> str | None:
    return flag if source.kind == "flag" else source.where


def _text(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _print(config: Path | None, as_json: bool, **kwargs: Any) -> None:
    flags = setting_values(kwargs)
    settings = command_settings(config, **flags)  # bad settings: the usage errors `run` gives
    sources = setting_sources(config, **flags)
    ctx = click.get_current_context()
    names = {p.name: p.opts[0] for p in ctx.command.params if isinstance(p, SettingOption)}
    values = settings.model_dump(mode="json")
    rows = {
        field: (_shown(settings, field, values[field]), src.kind, _where(src, names.get(field)))
        for field, src in sources.items()
    }
    if as_json:
        answer = {f: {"value": v, "source": k, "where": w} for f, (v, k, w) in rows.items()}
        click.echo(json_visible(json.dumps(answer, indent=2, ensure_ascii=False)))
        return
    shown = {field: visible(_text(value)) for field, (value, _, _) in rows.items()}
    width = max(map(len, rows))
    value_width = min(max(map(len, shown.values())), VALUE_WIDTH)
    click.echo(f"{'setting':<{width}}  {'value':<{value_width}}  source")
    for field, (_, kind, where) in rows.items():
        origin = visible(f"{kind} {where}" if where else kind)
        click.echo(f"{field:<{width}}  {shown[field]:<{value_width}}  {origin}")


# `run`'s own flags, so that a command line of `run` shows what `run` would use.
config = click.Command(
    "config",
    callback=_print,
    params=[
        *run.params,
        click.Option(["--json", "as_json"], is_flag=True, help="print a JSON object"),
    ],
    help="The settings `run` would use with these flags and where each came from: flag, "
    "environment (CDC_VERIFY_*), file (--config) or default. Passwords and the HTTP "
    "token are hidden, URLs shown without their passwords.",
    short_help="The effective settings of a command line and where each came from.",
)
