"""Which server each command needs for which role, from the settings alone (docs/topology.md).

Pure rules, no I/O: no connection, no password file read. A command line whose servers do
not add up raises `RoleProblem`, whose message names the flags to give; the CLI shows it
as a usage error.
"""

from __future__ import annotations

from collections.abc import Callable

from cdc_verify.config.servers import Role, role_url
from cdc_verify.config.settings import Settings, env_var


class RoleProblem(ValueError):
    """The servers given do not serve the command; the message says what to give."""


def no_server_given(settings: Settings) -> bool:
    """No role has a server: `run` and `demo` then start an embedded Redis."""
    return not any(role_url(settings, role) for role in Role)


def run_default_url(settings: Settings) -> str | None:
    """The server the roles of `run` default to: --redis; None when every role has its own,
    or when no server is given at all (see `no_server_given`)."""
    if settings.redis_url:
        return settings.redis_url
    unset = [role for role in Role if not role_url(settings, role)]
    if len(unset) in (0, len(Role)):
        return None
    names = " and ".join(role.value for role in unset)
    # The state server defaults to the sister's: one flag gives both.
    flags = [role for role in unset if not (role is Role.STATE and Role.SISTER in unset)]
    own = " and ".join(f"--{role.value}-redis URL" for role in flags)
    if Role.STATE in unset and Role.STATE not in flags:
        own += " (the state server defaults to it)"
    raise RoleProblem(
        f"no Redis URL for the {names} server{'s' if len(unset) > 1 else ''}: give "
        f"{own}, or --redis URL for every role without a server of its own (an "
        "embedded Redis is started only when no server is given at all)"
    )


def require_stream_servers(settings: Settings, command: str, *roles: Role) -> None:
    """backfill and capture read streams that exist already: a fresh embedded Redis has none."""
    unset = [role.value for role in roles if not role_url(settings, role)]
    if unset:
        streams = " and ".join(unset)
        own = " and ".join(f"--{role}-redis URL" for role in unset)
        raise RoleProblem(
            f"{command} reads streams that already exist, and a fresh embedded Redis has "
            f"nothing to read: no server for the {streams} stream; give --redis URL (or "
            f"{env_var('redis_url')}) or {own}"
        )


def require_state_server(settings: Settings, command: str, or_report: bool = False) -> None:
    """alerts, gate and coverage read what a worker wrote on its state server; gate and
    coverage can read a report directory instead (`or_report`)."""
    if not role_url(settings, Role.STATE):
        report = ", or --report DIR" if or_report else ""
        raise RoleProblem(
            f"{command} reads the worker's state server: give --state-redis URL or --redis URL "
            f"(or {env_var('state_redis_url')}, {env_var('redis_url')}){report}"
        )


def require_every_server(settings: Settings) -> None:
    """`check` connects to every server of `run`, so each role needs one."""
    unset = [role.value for role in Role if not role_url(settings, role)]
    if unset:
        raise RoleProblem(
            f"no Redis URL for the {' and '.join(unset)} server: give --redis URL (every "
            "role), or a URL per role (--production-redis, --sister-redis, --state-redis)"
        )


def capture_role(settings: Settings, side: str | None) -> Role:
    """--side, else production; sister when the sister server is the only one given."""
    if side:
        return Role(side)
    only_sister = settings.sister_redis_url and not (
        settings.production_redis_url or settings.redis_url
    )
    return Role.SISTER if only_sister else Role.PRODUCTION


def require_faust_topology(settings: Settings, state_is_cluster: Callable[[], bool]) -> None:
    """The Faust engine keeps both streams and its state on one server, read via the group.

    `state_is_cluster` asks the --redis server whether it is a Cluster node; it is called
    last, only when every other rule holds.
    """
    if settings.production_read_only:
        raise RoleProblem(
            "--engine faust cannot read production read-only: its forwarders share the "
            "streams through a consumer group (XREADGROUP, XACK), which a read-only ACL user "
            "may not run; use the single engine (the default) for --production-read-only"
        )
    apart = [role.value for role in Role if getattr(settings, f"{role.value}_redis_url")]
    if apart:
        raise RoleProblem(
            "--engine faust keeps both streams and its state on one Redis (--redis); "
            f"--{apart[0]}-redis is for the single engine (the default)"
        )
    if settings.redis_url and state_is_cluster():
        raise RoleProblem(
            "--engine faust runs on one plain Redis server, and --redis names a node of a "
            "Redis Cluster; use the single engine (the default) on a Cluster"
        )
