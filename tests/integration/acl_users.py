"""The ACL rules of docs/topology.md, read out of the page itself, and users made of them
on test servers: a rule the page misses makes the tests that run as these users fail."""

from __future__ import annotations

import re
from pathlib import Path

import redis

DOC = Path(__file__).resolve().parents[2] / "docs" / "topology.md"
# The bullet that introduces each list, and the name the tests give it.
_HEADINGS = {
    "read_only": "**Production, read-only**",
    "stream": "**The sister server, with the state elsewhere**",
    "state": "**The state server**",
}


def documented_rules() -> dict[str, str]:
    """name -> the command rules of the code block under its bullet."""
    text = DOC.read_text()
    rules = {}
    for name, heading in _HEADINGS.items():
        after = text[text.index(heading) :]
        match = re.search(r"```\n\s*(-@all[^\n]*)\n\s*```", after)
        assert match, f"no ACL rules under {heading} in {DOC}"
        rules[name] = match[1].strip()
    return rules


def make_user(client: redis.Redis, name: str, password: str, keys: str, *lists: str) -> None:
    """The user `name` with the key patterns `keys` and the documented `lists` together
    (e.g. "stream", "state": one server for the sister stream and the state)."""
    rules = documented_rules()
    words: list[str] = []
    for which in lists:
        words += [w for w in rules[which].split() if w not in words]
    client.execute_command("ACL", "SETUSER", name, "reset", "on", f">{password}",
                           *keys.split(), *words)  # fmt: skip


def refusals(client: redis.Redis) -> list[dict]:
    """What the server's ACL refused since its start (ACL LOG)."""
    return [dict(entry) for entry in client.acl_log()]
