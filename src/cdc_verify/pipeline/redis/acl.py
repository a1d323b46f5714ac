"""What each server's ACL user must allow (docs/topology.md, "ACL rules for the worker's
user"), and a harmless try of each command, so that a refusal is found at start, named
with its server and the ACL line to use, rather than as a traceback mid-run.

Redis checks a command against the ACL before it runs it (before its key's type, its
group or its script are looked at), so each command is sent in a form that changes
nothing: on a key that does not exist, a group that does not exist, an unknown script,
or a probe key holding a string, where a hash, set or sorted-set write fails with
WRONGTYPE. A NOPERM answer is a refusal; any other answer means the ACL let it through.
That works on every Redis with ACLs (6.0 and later); `ACL DRYRUN` would need an admin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import RedisServer, Role
from cdc_verify.config.settings import Settings
from cdc_verify.pipeline.redis.connection import client_options


class Need(StrEnum):
    """What the worker uses a server for; a server may serve several."""

    READ_ONLY = "production, read-only"
    STREAM = "a stream read through the consumer group"
    STATE = "state"


# The ACL rules of docs/topology.md, word for word (tests/unit/test_docs.py checks them).
RULES: dict[Need, str] = {
    Need.READ_ONLY: "-@all +@read +@connection +ping +time",
    Need.STREAM: (
        "-@all +@connection +ping +time +info +xreadgroup +xread +xrange +xrevrange +xlen "
        "+xack +xgroup +xautoclaim +xpending +xinfo +type +exists +get +set +pexpire +pttl "
        "+del +eval +evalsha +script +watch +unwatch +multi +exec"
    ),
    Need.STATE: (
        "-@all +@connection +ping +time +info +xadd +xtrim +type +exists +get +set +mget "
        "+del +pexpire +pexpireat +pttl +hset +hget +hmget +hgetall +hincrby +hsetnx "
        "+hexists +hdel +hscan +zadd +zrem +zrange +zrangebyscore +zrevrange +zcard "
        "+zcount +zscore +zrank +sadd +smembers +scan +eval +evalsha +script"
    ),
}
# What the read-only rules' +@read gives that the worker sends (docs/topology.md).
_READ_ONLY_COMMANDS = ("xread", "xrange", "xrevrange", "xinfo", "xlen", "type", "time", "ping")
NO_GROUP = "cdc-verify-acl-check"  # a group name no worker uses
NO_SCRIPT = "0" * 40

# command -> the commands that try it harmlessly, given (stream key, probe key). The
# probe key holds a string while they run (it is SET first, and deleted last).
Probe = Callable[[str, str], list[list[str]]]
PROBES: dict[str, Probe] = {
    "ping": lambda s, k: [["PING"]],
    "time": lambda s, k: [["TIME"]],
    "type": lambda s, k: [["TYPE", s]],
    "xread": lambda s, k: [["XREAD", "COUNT", "1", "STREAMS", s, "$"]],
    "xrange": lambda s, k: [["XRANGE", s, "0-0", "0-0"]],
    # From the newest entry down to the newest: nothing, at once. ("0-0 0-0" walked the
    # whole stream back in Redis 6.2: 26 ms for 200k entries, at every session start.)
    "xrevrange": lambda s, k: [["XREVRANGE", s, "+", "+"]],
    "xlen": lambda s, k: [["XLEN", s]],
    "xinfo": lambda s, k: [["XINFO", "GROUPS", s]],
    "xreadgroup": lambda s, k: [
        ["XREADGROUP", "GROUP", NO_GROUP, "c", "COUNT", "1", "STREAMS", s, ">"]
    ],
    "xack": lambda s, k: [["XACK", s, NO_GROUP, "0-1"]],
    "xgroup": lambda s, k: [["XGROUP", "SETID", s, NO_GROUP, "$"]],
    "xautoclaim": lambda s, k: [["XAUTOCLAIM", s, NO_GROUP, "c", "0", "0-0", "COUNT", "1"]],
    "xpending": lambda s, k: [["XPENDING", s, NO_GROUP]],
    "xadd": lambda s, k: [["XADD", k, "NOMKSTREAM", "*", "f", "v"]],
    "xtrim": lambda s, k: [["XTRIM", k, "MAXLEN", "0"]],
    "exists": lambda s, k: [["EXISTS", k]],
    "get": lambda s, k: [["GET", k]],
    "mget": lambda s, k: [["MGET", k]],
    "pexpire": lambda s, k: [["PEXPIRE", k, "60000"]],
    "pexpireat": lambda s, k: [["PEXPIREAT", k, "32503680000000"]],
    "pttl": lambda s, k: [["PTTL", k]],
    "hset": lambda s, k: [["HSET", k, "f", "v"]],
    "hget": lambda s, k: [["HGET", k, "f"]],
    "hmget": lambda s, k: [["HMGET", k, "f"]],
    "hgetall": lambda s, k: [["HGETALL", k]],
    "hincrby": lambda s, k: [["HINCRBY", k, "f", "1"]],
    "hsetnx": lambda s, k: [["HSETNX", k, "f", "v"]],
    "hexists": lambda s, k: [["HEXISTS", k, "f"]],
    "hdel": lambda s, k: [["HDEL", k, "f"]],
    "hscan": lambda s, k: [["HSCAN", k, "0"]],
    "zadd": lambda s, k: [["ZADD", k, "1", "m"]],
    "zrem": lambda s, k: [["ZREM", k, "m"]],
    "zrange": lambda s, k: [["ZRANGE", k, "0", "0"]],
    "zrangebyscore": lambda s, k: [["ZRANGEBYSCORE", k, "0", "0"]],
    "zrevrange": lambda s, k: [["ZREVRANGE", k, "0", "0"]],
    "zcard": lambda s, k: [["ZCARD", k]],
    "zcount": lambda s, k: [["ZCOUNT", k, "0", "0"]],
    "zscore": lambda s, k: [["ZSCORE", k, "m"]],
    "zrank": lambda s, k: [["ZRANK", k, "m"]],
    "sadd": lambda s, k: [["SADD", k, "m"]],
    "smembers": lambda s, k: [["SMEMBERS", k]],
    "scan": lambda s, k: [["SCAN", "0", "MATCH", k, "COUNT", "1"]],
    "eval": lambda s, k: [["EVAL", "return 1", "0"]],
    "evalsha": lambda s, k: [["EVALSHA", NO_SCRIPT, "0"]],
    "script": lambda s, k: [["SCRIPT", "EXISTS", NO_SCRIPT]],
    "watch": lambda s, k: [["WATCH", k], ["UNWATCH"]],
    "unwatch": lambda s, k: [["UNWATCH"]],
    "multi": lambda s, k: [["MULTI"], ["EXEC"]],
    "exec": lambda s, k: [["EXEC"]],  # without MULTI: an error, once the ACL let it by
    "set": lambda s, k: [["SET", k, "acl-check", "PX", "60000"]],
    "del": lambda s, k: [["DEL", k]],
}
# Writes that would make the probe key a hash, set, ... if it were not a string.
_NEED_STRING = frozenset({"hset", "hincrby", "hsetnx", "zadd", "sadd"})


def needed(needs: Iterable[Need]) -> list[str]:
    """The commands of `needs`, in the order they are tried: SET first (it makes the
    probe key), DEL last (it removes it), MULTI and EXEC after the rest."""
    found: set[str] = set()
    for need in needs:
        if need is Need.READ_ONLY:
            found.update(_READ_ONLY_COMMANDS)
        else:
            found.update(w[1:] for w in RULES[need].split() if w.startswith("+") and "@" not in w)
    found.discard("info")  # documented, harmlessly, but not needed (HELLO finds a Cluster)
    late = [c for c in ("multi", "exec", "del") if c in found]
    first = ["set"] if "set" in found else []
    return first + sorted(found - {*late, *first}) + late


@dataclass
class AclCheck:
    """What one server's user was refused."""

    commands: list[str] = field(default_factory=list)  # refused commands
    keys: list[str] = field(default_factory=list)  # keys the user may not touch
    unchecked: list[str] = field(default_factory=list)  # not tried: SET was refused

    @property
    def ok(self) -> bool:
        return not (self.commands or self.keys or self.unchecked)


async def check_acl(
    server: RedisServer, needs: Iterable[Need], streams: list[str], probe_key: str
) -> AclCheck:
    """Try every command `needs` asks for, as the server's user, on a connection of its
    own. Connection failures (and wrong credentials) raise, as for any command."""
    assert server.url
    options = {**client_options(server), "single_connection_client": True}
    options.pop("health_check_interval", None)
    client = aioredis.Redis.from_url(server.url, **options)
    result = AclCheck()
    wanted = needed(needs)
    try:
        for command in wanted:
            if command in _NEED_STRING and "set" in result.commands:
                result.unchecked.append(command)
                continue
            tries = {tuple(a) for stream in streams or [probe_key]
                     for a in PROBES[command](stream, probe_key)}  # fmt: skip
            for args in sorted(tries, key=lambda a: a[0] in ("EXEC", "UNWATCH")):
                refusal = await _try(client, list(args))
                if refusal == "command" and command not in result.commands:
                    result.commands.append(command)
                elif refusal == "key":
                    key = next((a for a in args if a in streams), probe_key)
                    if key not in result.keys:
                        result.keys.append(key)
    finally:
        if "del" in wanted:
            await _try(client, ["DEL", probe_key])
        await client.aclose()
    return result


async def _try(client: aioredis.Redis, args: list[str]) -> str | None:
    """None: the ACL let it through; "command" or "key": what it refused."""
    try:
        await client.execute_command(*args)
    except redis_errors.NoPermissionError as exc:
        return "key" if "key" in str(exc).lower() else "command"
    except redis_errors.ResponseError:
        pass  # NOSCRIPT, NOGROUP, WRONGTYPE, MOVED, ...: past the ACL
    return None


@dataclass(frozen=True)
class ServerUse:
    """One server (one configuration: URL, user, password, TLS) and what it is used for."""

    roles: tuple[str, ...]
    server: RedisServer
    needs: tuple[Need, ...]
    streams: tuple[str, ...]


def server_uses(settings: Settings) -> list[ServerUse]:
    """The servers of `run` with these settings, roles configured alike taken together."""
    from dataclasses import replace

    uses: dict[RedisServer, ServerUse] = {}
    for role in Role:
        server = settings.server(role)
        need = Need.STATE
        streams: tuple[str, ...] = ()
        if role is Role.PRODUCTION:
            need = Need.READ_ONLY if settings.production_read_only else Need.STREAM
            streams = (settings.production,)
        elif role is Role.SISTER:
            need, streams = Need.STREAM, (settings.sister,)
        config = replace(server, role=Role.STATE)
        seen = uses.get(config)
        if seen is None:
            uses[config] = ServerUse((role.value,), server, (need,), streams)
        else:
            uses[config] = ServerUse(
                (*seen.roles, role.value), seen.server,
                tuple(dict.fromkeys((*seen.needs, need))), (*seen.streams, *streams),
            )  # fmt: skip
    return list(uses.values())


def probe_key(keys: WorkerKeys) -> str:
    """Beside the lock: on a Cluster, in the state keys' slot (hash tag) like the rest."""
    return keys.lock.removesuffix(":lock") + ":acl-check"


def acl_line(use: ServerUse, settings: Settings) -> str:
    """The rules to give the user: key patterns, then every command its needs ask for."""
    keys = [f"~{s}" for s in use.streams]
    if set(use.needs) - {Need.READ_ONLY}:
        keys.append(f"~{settings.key_prefix}:*")
        if Need.STATE in use.needs and not settings.verdict_stream.startswith(
            f"{settings.key_prefix}:"
        ):
            keys.append(f"~{settings.verdict_stream}")
    words = ["-@all"]
    for need in use.needs:
        words += [w for w in RULES[need].split() if w not in words]
    return " ".join(dict.fromkeys(keys)) + " " + " ".join(words)


def refusal(use: ServerUse, check: AclCheck, settings: Settings) -> str:
    """One line: which server refused what, and the fix."""
    what, fix = describe(use, check, settings)
    return f"the {' and '.join(use.roles)} server {use.server.redacted_url()} {what}; {fix}"


def describe(use: ServerUse, check: AclCheck, settings: Settings) -> tuple[str, str]:
    """(what the user was refused, the fix)."""
    user = use.server.username or "default"
    what = []
    if check.commands:
        what.append("refuses " + ", ".join(c.upper() for c in check.commands))
    if check.keys:
        what.append("may not touch " + ", ".join(repr(k) for k in check.keys))
    if check.unchecked:
        what.append("(not tried, as SET was refused: " + ", ".join(check.unchecked) + ")")
    grant = f"ACL SETUSER {user} {acl_line(use, settings)}"
    reads = set(needed([Need.READ_ONLY]))
    if (
        Need.READ_ONLY not in use.needs
        and Role.PRODUCTION.value in use.roles
        and Need.STATE not in use.needs
        and not set(check.commands) & reads
    ):
        fix = (
            "is it a read-only user? add --production-read-only (production is then sent "
            f"read commands only), or give the user: {grant}"
        )
    else:
        fix = f"give the user what it needs: {grant}"
    return f"(user {user}) " + "; ".join(what), fix


@dataclass
class ServerReport:
    """One row of `cdc-verify check`."""

    use: ServerUse
    reachable: str  # "yes", or why not
    streams: list[str]  # "<key>: stream, N entries, group G present", or what is wrong
    refused: str  # "" or what the ACL refused
    fix: str  # "" or the line to act on
    ok: bool


async def check_servers(settings: Settings) -> list[ServerReport]:
    """Each server of `run` with these settings, as its user: reachable, its streams and
    their group, and every command the user is refused (acl.py's probes)."""
    reports = []
    for use in server_uses(settings):
        try:
            probe = probe_key(WorkerKeys.from_settings(settings))
            check = await check_acl(use.server, use.needs, list(use.streams), probe)
            streams, streams_ok = await _streams(use, settings)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            fix = "check its URL, user and password"
            reports.append(ServerReport(use, f"no: {reason}", [], "", fix, False))
            continue
        refused, fix = describe(use, check, settings) if not check.ok else ("", "")
        if not streams_ok:
            missing = "a stream the worker reads is not there: run waits for it"
            fix = "; ".join(filter(None, [fix, missing + " (--create-streams makes it)"]))
        reports.append(ServerReport(use, "yes", streams, refused, fix, check.ok and streams_ok))
    return reports


async def _streams(use: ServerUse, settings: Settings) -> tuple[list[str], bool]:
    if not use.streams:
        return [], True
    options = {**client_options(use.server), "single_connection_client": True}
    options.pop("health_check_interval", None)
    assert use.server.url
    client = aioredis.Redis.from_url(use.server.url, **options)
    lines, ok = [], True
    try:
        for key in use.streams:
            read_only = settings.production_read_only and key == settings.production
            try:
                kind = _text(await client.type(key))
                if kind != "stream":
                    ok = False
                    lines.append(f"{key}: missing" if kind == "none" else f"{key}: a {kind}")
                    continue
                length = await client.xlen(key)
                text = f"{key}: stream, {length:,} entries"
                if not read_only:  # read through the group
                    groups = await client.xinfo_groups(key)
                    names = {_text(g["name"]) for g in groups}
                    has = settings.group in names
                    text += (
                        f", group {settings.group} {'present' if has else 'absent (run makes it)'}"
                    )
                lines.append(text)
            except redis_errors.ResponseError as exc:  # NOPERM, MOVED: said, not fatal
                ok = ok and not isinstance(exc, redis_errors.NoPermissionError)
                lines.append(f"{key}: ? ({exc})")
    finally:
        await client.aclose()
    return lines, ok


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
