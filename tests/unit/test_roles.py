"""config.roles: which server each command needs for which role, from settings alone."""

from __future__ import annotations

import pytest

from cdc_verify.config.roles import (
    RoleProblem,
    capture_role,
    no_server_given,
    require_every_server,
    require_faust_topology,
    require_state_server,
    require_stream_servers,
    run_default_url,
)
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings

A, B = "redis://a:6379", "redis://b:6379"


def settings(**fields: object) -> Settings:
    return Settings.model_validate(fields)


def test_run_defaults_to_redis_or_to_no_server_or_names_the_roles_left_without_one():
    assert run_default_url(settings(redis_url=A)) == A
    assert run_default_url(settings(production_redis_url=A, sister_redis_url=B)) is None
    assert no_server_given(settings()) and run_default_url(settings()) is None
    with pytest.raises(RoleProblem, match=r"sister and state servers: give --sister-redis URL "
                       r"\(the state server defaults to it\)"):  # fmt: skip
        run_default_url(settings(production_redis_url=A))


def test_the_state_server_guard_names_both_flags_and_the_report_when_it_can_replace_them():
    require_state_server(settings(sister_redis_url=A), "alerts")  # the state defaults to it
    with pytest.raises(RoleProblem, match=r"^alerts reads .*CDC_VERIFY_REDIS_URL\)$"):
        require_state_server(settings(production_redis_url=A), "alerts")
    with pytest.raises(RoleProblem, match=r"^gate reads .*, or --report DIR$"):
        require_state_server(settings(), "gate", or_report=True)


def test_commands_that_read_existing_streams_or_every_server_need_them_given():
    require_stream_servers(settings(redis_url=A), "backfill", Role.PRODUCTION, Role.SISTER)
    with pytest.raises(RoleProblem, match="no server for the sister stream"):
        require_stream_servers(
            settings(production_redis_url=A), "backfill", Role.PRODUCTION, Role.SISTER
        )
    with pytest.raises(RoleProblem, match="no Redis URL for the production server"):
        require_every_server(settings(sister_redis_url=A))


def test_capture_reads_production_unless_only_the_sister_server_is_given():
    assert capture_role(settings(redis_url=A), None) is Role.PRODUCTION
    assert capture_role(settings(sister_redis_url=A), None) is Role.SISTER
    assert capture_role(settings(redis_url=A), "sister") is Role.SISTER


def test_faust_asks_about_a_cluster_only_when_every_other_rule_holds():
    asked: list[bool] = []

    def is_cluster() -> bool:
        asked.append(True)
        return True

    with pytest.raises(RoleProblem, match="--sister-redis is for the single engine"):
        require_faust_topology(settings(redis_url=A, sister_redis_url=B), is_cluster)
    assert asked == []
    with pytest.raises(RoleProblem, match="names a node of a Redis Cluster"):
        require_faust_topology(settings(redis_url=A), is_cluster)
    require_faust_topology(settings(redis_url=A), lambda: False)
