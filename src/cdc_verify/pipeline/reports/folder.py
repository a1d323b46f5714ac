"""Reading a report folder back (`coverage --report`, `gate --report`): one place that says
why a folder cannot be read, in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cdc_verify.schemas.models import Summary


class UnreadableReport(Exception):
    """The folder, or a file of it, cannot be read; the message says why and what to do."""


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def check_folder(directory: Path) -> None:
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise UnreadableReport(f"report directory {directory} {what}")


def read_json(directory: Path, name: str, missing_hint: str) -> Any:
    """The JSON document `name` of the folder; `missing_hint` says why it may be absent."""
    path = directory / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnreadableReport(f"{directory} holds no {name}: {missing_hint}") from None
    except OSError as exc:
        raise UnreadableReport(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # JSONDecodeError, or text that is no UTF-8
        raise UnreadableReport(f"{path} is not a valid {name}: {_first_line(exc)}") from None


def read_summary(directory: Path) -> tuple[Summary, dict[str, Any]]:
    """The folder's summary.json, validated, and as written (older versions lack fields)."""
    check_folder(directory)
    raw = read_json(directory, "summary.json", "is it the --out of a backfill or replay?")
    try:
        return Summary.model_validate(raw), raw
    except ValidationError as exc:
        path = directory / "summary.json"
        raise UnreadableReport(f"{path} is not a valid summary.json: {_first_line(exc)}") from None
