"""`cdc-verify cases`: the fewest production events covering every shape and mismatch group
of captures with known shapes, redacted as asked."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgpack
from click.testing import CliRunner

from cdc_verify.capture.format import CaptureWriter
from cdc_verify.cli import main
from cdc_verify.consumers.reference import decode_event
from cdc_verify.coverage.cases import Seen, choose, redact

from ..shape_corpus import known_shapes


def capture(path: Path, entries) -> Path:
    with CaptureWriter(path, {"stream": path.stem}) as writer:
        for e in entries:
            flat = [x for kv in e.fields.items() for x in kv]
            writer.write(e.entry_id.encode(), flat)
    return path


def corpus(tmp_path: Path) -> tuple[Path, Path]:
    """The known shapes (tests/shape_corpus.py) as two capture files: two mismatch groups
    (/score and /body) besides the GIF comments' gaps."""
    production, sister = known_shapes()
    return capture(tmp_path / "p.cap", production), capture(tmp_path / "s.cap", sister)


def cases(tmp_path: Path, *args: str) -> tuple[dict, str]:
    result = CliRunner(env={}).invoke(main, ["cases", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / "out" / "cases.json").read_text()), result.output


def test_every_shape_and_group_is_covered_by_as_few_events_as_it_takes(tmp_path):
    prod, sis = corpus(tmp_path)
    document, printed = cases(tmp_path, "--production", str(prod), "--sister", str(sis),
                              "--grace", "0.1")  # fmt: skip
    # 4 shapes; 3 groups: gaps of the GIF comments, /score of a link, /body of removed ones.
    assert (document["shapes"], document["groups"], document["events"]) == (4, 3, 40)
    assert "40 production events, 4 shapes, 3 mismatch groups: 4 cases in" in printed
    chosen = {c["event_id"]: c for c in document["cases"]}
    # Each case brings a shape; the three with a group bring it too: 4 cases, not 7.
    assert len(chosen) == 4 and len({c["shape"] for c in chosen.values()}) == 4
    assert chosen["link-3"]["group"] == "/score value"
    assert chosen["removed-5"]["group"] == "/body value"
    assert chosen["gif-0"]["verdict_seen"] == "missing_in_sister"
    plain = next(c for c in chosen.values() if c["group"] is None)
    assert plain["verdict_seen"] == "match" and plain["expected_verdict"] == "match"
    # A vector carries the entry's bytes and what the legacy consumer decodes from them.
    fields = {k.encode(): base64.b64decode(v) for k, v in plain["fields"].items()}
    assert decode_event(fields) == plain["decoded"]


def test_cases_are_redacted_in_the_payload_bytes_and_the_decoded_event(tmp_path):
    prod, _ = corpus(tmp_path)
    document, _ = cases(tmp_path, "--production", str(prod), "--redact", "/body",
                        "--redact", "/author_id")  # fmt: skip
    assert document["redacted"] == ["/body", "/author_id"]
    assert document["groups"] == 1  # without a sister: every event is missing in it
    for case in document["cases"]:
        fields = {k.encode(): base64.b64decode(v) for k, v in case["fields"].items()}
        payload = msgpack.unpackb(fields[b"payload"], raw=False)
        assert payload["body"] == payload["author_id"] == "<redacted>"
        assert case["decoded"]["body"] == "<redacted>" and case["decoded"]["id"]
        assert decode_event(fields)["body"] == "<redacted>"  # still a valid event
    bad = CliRunner(env={}).invoke(main, ["cases", "--production", str(prod), "--out",
                                          str(tmp_path / "x"), "--redact", "body"])  # fmt: skip
    assert bad.exit_code == 2 and "not a JSON pointer" in bad.output


def test_redact_and_choose():
    value = {"a": [{"t": "x", "n": 3}, {"t": "y", "n": 4}], "b": b"z", "c": True}
    assert redact(value, ["/a/*/t", "/b", "/c"]) == {
        "a": [{"t": "<redacted>", "n": 3}, {"t": "<redacted>", "n": 4}], "b": b"<redacted>",
        "c": True,
    }  # fmt: skip
    assert redact(value, ["/a"]) == {**value, "a": []}
    events = {
        "e1": Seen("comment", 0, None, "match"),
        "e2": Seen("comment", 0, 0, "mismatch"),  # shape 0 and group 0: one event for both
        "e3": Seen("comment", 1, 0, "mismatch"),
        "e4": Seen("comment", 1, None, "match"),
    }
    assert choose(events, [0, 1]) == ["e2", "e3"]
