"""The ACL rules the worker checks at start and `check` prints are the ones
docs/topology.md gives, word for word (the integration tests create users from the page)."""

from __future__ import annotations

from cdc_verify.pipeline.redis.acl import PROBES, RULES, Need, needed
from tests.integration.acl_users import documented_rules


def test_the_code_rules_are_the_documented_ones():
    doc = documented_rules()
    assert doc == {"read_only": RULES[Need.READ_ONLY], "stream": RULES[Need.STREAM],
                   "state": RULES[Need.STATE]}  # fmt: skip


def test_every_needed_command_has_a_harmless_probe():
    for need in Need:
        missing = [c for c in needed([need]) if c not in PROBES]
        assert not missing, (need, missing)
