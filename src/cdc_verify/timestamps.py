"""One way to write a moment: ISO 8601 in UTC with a `Z`, as every report, record and
answer shows it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

Precision = Literal["seconds", "milliseconds"]


def iso_ms(ms: float, timespec: Precision = "seconds") -> str:
    """The moment `ms` milliseconds after the epoch."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def iso_now(timespec: Precision = "seconds") -> str:
    return iso_ms(time.time() * 1000, timespec)
