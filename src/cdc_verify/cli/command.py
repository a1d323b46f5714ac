"""The classes of the `cdc-verify` group and its commands.

Help grouped by topic: click lists a command's options in one block, so a `TopicOption`
carries its topic and a `Command` prints one section per topic, in the order of `Topic`.
Errors as messages: a role rule broken (config.roles) is a usage error of the command, a
Redis error one clear line rather than a traceback.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import click

from cdc_verify.config.roles import RoleProblem


class Topic(Enum):
    """The sections of a command's help, in the order printed: the options most runs set
    first, then the details, which most runs leave at their defaults."""

    SERVERS = "Servers"
    REPORT = "Report directory, instead of the live worker"
    STREAMS = "Streams"
    TRAFFIC = "Simulated traffic"
    SCOPE = "Scope and comparison"
    CRITERIA = "Criteria"
    HTTP = "HTTP"
    OUTPUT = "Output"
    GENERAL = "Config file and help"
    # The details.
    ACCESS = "Server access: ACL users, password files, TLS, read-only production"
    GROUP = "Group member and start"
    COMPARISON = "Sampling, floats and decoding"
    ENVELOPE = "Envelopes: what a stream entry means (docs/envelopes.md)"
    RECORDS = "Verdict records and logs"
    RETENTION = "Retention"
    HTTP_LIMITS = "HTTP exposure and limits"
    ENGINE = "Engine: Faust on Kafka"
    READING = "Reads, memory and the worker lock"


class TopicOption(click.Option):
    """An option shown under `topic` in its command's help."""

    def __init__(self, *args: Any, topic: Topic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.topic = topic


class Command(click.Command):
    """A command whose help has a section per topic (an option without one, --help, is
    under `Topic.GENERAL`), and whose broken role rules are usage errors."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[Topic, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                topic = param.topic if isinstance(param, TopicOption) else Topic.GENERAL
                sections.setdefault(topic, []).append(record)
        for topic in Topic:
            if topic in sections:
                with formatter.section(topic.value):
                    formatter.write_dl(sections[topic])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RoleProblem as exc:  # its message names the flags to give
            raise click.UsageError(str(exc), ctx) from exc


class RedisErrorsAsMessages(click.Group):
    """Redis errors reach the user as one clear line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        import redis

        from cdc_verify.pipeline.redis.errors import AclRefused, ServerRefused

        try:
            return super().invoke(ctx)
        except (ServerRefused, AclRefused) as exc:  # they name the server and the fix
            raise click.ClickException(str(exc)) from exc
        except redis.AuthenticationError as exc:
            raise click.ClickException(f"Redis refused the credentials: {exc}") from exc
        except redis.exceptions.NoPermissionError as exc:
            raise click.ClickException(
                f"Redis ACL denies a command the verifier needs: {exc}"
            ) from exc
        except redis.ConnectionError as exc:
            raise click.ClickException(f"cannot reach Redis: {exc}") from exc
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis error: {exc}") from exc
