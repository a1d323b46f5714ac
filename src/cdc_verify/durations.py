"""One syntax for every duration: each setting in seconds (`grace`, `alert_retention`,
`gate_since`, ...) from a flag, the environment or TOML, `--since` of `alerts` and
`gate`, `demo`'s `--grace` and `--linger`, and the API's `since` (docs/commands.md,
"Durations").

A duration is seconds as a plain number (`90`, `0.5`), or a number and a unit: `s`,
`m`, `h` or `d` (`30s`, `10m`, `1.5h`, `7d`).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A sign is taken so that "-1" reaches the setting's own bound ("must be >= 0").
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_DURATION = re.compile(rf"\s*({_NUMBER})\s*([smhd]?)\s*")
# The API's query parameter: no sign, bounded digits (a URL is no place for 1e300).
DURATION_PATTERN = r"^[0-9]{1,9}(\.[0-9]{1,3})?[smhd]?$"
SYNTAX = "seconds (90) or a number and a unit: 30s, 10m, 2h, 7d"


def parse_duration(value: object) -> float:
    """Seconds of a duration: `value` a number of seconds, or text like '90', '10m'.
    Anything else (a bool, a list from TOML, inf) is a ValueError that says the syntax."""
    seconds = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match[1]) * UNITS[match[2] or "s"]
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a duration: give {SYNTAX}")
    return seconds


def parse_window(text: str) -> timedelta:
    """A duration as a timedelta: the window of `--since` and the API's `since`."""
    return timedelta(seconds=parse_duration(text))
