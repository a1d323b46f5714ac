"""``--consumer module:callable`` loading."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from cdc_verify.consumers import reference
from cdc_verify.consumers.loader import REFERENCE_CONSUMER, ConsumerLoadError, load_consumer


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path for throw-away consumer modules."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names = {
        "my_consumer": """
            class Holder:
                class Inner:
                    @staticmethod
                    def decode(fields):
                        return {"who": "inner"}

            def decode(fields):
                return {"who": "top"}

            NOT_CALLABLE = 42
        """,
        "broken_dep_consumer": "import cdc_verify_no_such_dependency_xyz\n",
        "raising_consumer": "raise RuntimeError('boom at import')\n",
    }
    for name, source in names.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_reference_consumer_spec_loads_decode_event() -> None:
    assert REFERENCE_CONSUMER == "cdc_verify.consumers.reference:decode_event"
    assert load_consumer(REFERENCE_CONSUMER) is reference.decode_event


def test_user_consumer_loads(user_modules: Path) -> None:
    consumer = load_consumer("my_consumer:decode")
    assert consumer({}) == {"who": "top"}


def test_dotted_attribute_after_colon(user_modules: Path) -> None:
    consumer = load_consumer("my_consumer:Holder.Inner.decode")
    assert consumer({}) == {"who": "inner"}


def test_no_colon_is_rejected() -> None:
    with pytest.raises(ConsumerLoadError, match="no ':'") as info:
        load_consumer("cdc_verify.consumers.reference.decode_event")
    assert "module:callable" in str(info.value)


@pytest.mark.parametrize("spec", [":decode", "cdc_verify.consumers.reference:", ":"])
def test_empty_parts_are_rejected(spec: str) -> None:
    with pytest.raises(ConsumerLoadError, match="non-empty"):
        load_consumer(spec)


def test_missing_module_names_module_and_import_error() -> None:
    with pytest.raises(ConsumerLoadError) as info:
        load_consumer("cdc_verify_no_such_module_abc:decode")
    message = str(info.value)
    assert "cannot import module 'cdc_verify_no_such_module_abc'" in message
    assert "ModuleNotFoundError" in message


def test_module_with_missing_dependency_names_both(user_modules: Path) -> None:
    with pytest.raises(ConsumerLoadError) as info:
        load_consumer("broken_dep_consumer:decode")
    message = str(info.value)
    assert "'broken_dep_consumer'" in message
    assert "cdc_verify_no_such_dependency_xyz" in message


def test_module_raising_at_import_is_reported(user_modules: Path) -> None:
    with pytest.raises(ConsumerLoadError, match="RuntimeError: boom at import"):
        load_consumer("raising_consumer:decode")


def test_missing_attribute_is_named(user_modules: Path) -> None:
    with pytest.raises(ConsumerLoadError, match="has no attribute 'nope'"):
        load_consumer("my_consumer:nope")


def test_missing_nested_attribute_is_named(user_modules: Path) -> None:
    with pytest.raises(ConsumerLoadError) as info:
        load_consumer("my_consumer:Holder.Missing.decode")
    assert "'my_consumer:Holder' has no attribute 'Missing'" in str(info.value)


def test_not_callable_is_rejected(user_modules: Path) -> None:
    with pytest.raises(ConsumerLoadError, match=r"not callable \(type int\)"):
        load_consumer("my_consumer:NOT_CALLABLE")


def test_reference_known_keys_is_not_callable() -> None:
    with pytest.raises(ConsumerLoadError) as info:
        load_consumer("cdc_verify.consumers.reference:KNOWN_KEYS")
    assert "'cdc_verify.consumers.reference:KNOWN_KEYS' is not callable" in str(info.value)


def test_consumer_load_error_is_a_value_error() -> None:
    assert issubclass(ConsumerLoadError, ValueError)


# -- one consumer per entity --------------------------------------------------------


def test_default_consumers_dispatch_comments_and_accounts() -> None:
    from cdc_verify.consumers import account
    from cdc_verify.consumers.loader import DEFAULT_CONSUMERS, ConsumersByEntity, load_consumers

    consumer = load_consumers(DEFAULT_CONSUMERS)
    assert isinstance(consumer, ConsumersByEntity)
    assert consumer.default is reference.decode_event
    assert consumer.by_entity == {b"account": account.decode_event}


def test_one_plain_consumer_is_the_callable_itself(user_modules: Path) -> None:
    from cdc_verify.consumers.loader import load_consumers

    assert load_consumers(["my_consumer:decode"])({}) == {"who": "top"}


def test_an_entity_without_a_consumer_raises_naming_it(user_modules: Path) -> None:
    from cdc_verify.consumers.loader import NoConsumerForEntity, load_consumers

    consumer = load_consumers(
        ["comment=my_consumer:decode", "link=my_consumer:Holder.Inner.decode"]
    )
    assert consumer({b"entity": b"comment"}) == {"who": "top"}
    assert consumer({b"entity": b"link"}) == {"who": "inner"}
    with pytest.raises(
        NoConsumerForEntity, match=r"no consumer for entity 'account'.*comment, link"
    ):
        consumer({b"entity": b"account"})
    with pytest.raises(NoConsumerForEntity, match="no entity field"):
        consumer({})


def test_a_default_serves_every_entity_without_its_own(user_modules: Path) -> None:
    from cdc_verify.consumers.loader import load_consumers

    consumer = load_consumers(["my_consumer:decode", "link=my_consumer:Holder.Inner.decode"])
    assert consumer({b"entity": b"poll"}) == {"who": "top"}
    assert consumer({}) == {"who": "top"}
    assert consumer({b"entity": b"link"}) == {"who": "inner"}


@pytest.mark.parametrize(
    ("specs", "words"),
    [
        (["my_consumer:decode", "my_consumer:decode"], "default consumer is given twice"),
        (["a=my_consumer:decode", "a=my_consumer:decode"], "entity 'a' is given twice"),
        (["=my_consumer:decode"], "ENTITY=module:callable"),
        (["a=my_consumer"], "no ':'"),
    ],
)
def test_bad_consumer_lists_are_refused(user_modules: Path, specs: list[str], words: str) -> None:
    from cdc_verify.consumers.loader import load_consumers

    with pytest.raises(ConsumerLoadError, match=words):
        load_consumers(specs)


def test_an_entity_without_a_consumer_is_undecodable_in_the_verifier(user_modules: Path) -> None:
    from cdc_verify.consumers.loader import load_consumers
    from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
    from cdc_verify.core.verifier import Verifier

    verifier = Verifier(load_consumers(["comment=my_consumer:decode"]))
    fields = {b"event_id": b"E1", b"entity": b"poll", b"op": b"create"}
    [outcome] = verifier.ingest(
        [StreamEntry(PRODUCTION, "1-0", fields), StreamEntry(SISTER, "2-0", fields)]
    )
    record = outcome.record.as_json()
    assert record["verdict"] == "undecodable" and record["side"] == "both"
    assert "NoConsumerForEntity: no consumer for entity 'poll'" in record["error"]
