"""Lua scripts whose KEYS and ARGV are named once, for Python and Lua alike.

A script declares the names of its keys and arguments (and of the fields of any
array it unpacks, and any string constants it compares with); Lua reads `K.verdicts`,
`A.group`, `o[ROW.kind]`, `KIND.PRIMARY`, and Python passes keyword arguments. Neither
side counts positions, so adding a name cannot shift another one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.commands.core import AsyncScript


@dataclass(frozen=True)
class ScriptContract:
    keys: tuple[str, ...]
    args: tuple[str, ...]
    # Named fields of arrays the script unpacks: Lua table name -> field names.
    records: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # String constants the script compares with: Lua table name -> name -> value (a
    # Python enum's values, say, so that Lua never spells them itself).
    constants: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def preamble(self) -> str:
        lines = [_table("K", "KEYS", self.keys), _table("A", "ARGV", self.args)]
        for name, fields in self.records.items():
            lines.append(
                f"local {name} = {{"
                + ", ".join(f"{f} = {i}" for i, f in enumerate(fields, 1))
                + "}"
            )
        for name, values in self.constants.items():
            lines.append(
                f"local {name} = {{"
                + ", ".join(f"{k} = {_lua_string(v)}" for k, v in values.items())
                + "}"
            )
        return "\n".join(lines) + "\n"

    def register(self, client: aioredis.Redis | AsyncRedisCluster, body: str) -> AsyncScript:
        return client.register_script(self.preamble() + body)

    def keys_of(self, **keys: str) -> list[str]:
        return _ordered("key", self.keys, keys)

    def args_of(self, **args: Any) -> list[Any]:
        return _ordered("argument", self.args, args)

    def record(self, name: str, **values: Any) -> list[Any]:
        """One array for `name`'s fields, in the order Lua reads them."""
        return _ordered(f"{name} field", self.records[name], values)


def _table(name: str, source: str, names: Sequence[str]) -> str:
    entries = ", ".join(f"{n} = {source}[{i}]" for i, n in enumerate(names, 1))
    return f"local {name} = {{{entries}}}"


def _lua_string(value: str) -> str:
    # Constants are short names: refuse anything a quote or escape could change.
    if not value.replace("_", "").isalnum() or not value.isascii():
        raise ValueError(f"a script constant must be letters, digits or _: {value!r}")
    return f"'{value}'"


def _ordered(what: str, names: Sequence[str], given: Mapping[str, Any]) -> list[Any]:
    if set(given) != set(names):
        missing, unknown = set(names) - set(given), set(given) - set(names)
        raise TypeError(f"script {what}s: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return [given[n] for n in names]
