"""`cdc-verify cases`: the fewest production events covering every shape and mismatch group
of captures with known shapes, redacted as asked."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgpack
from click.testing import CliRunner

from cdc_verify.cli import main
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import PRODUCTION, SISTER
from cdc_verify.coverage.cases import Seen, choose, redact, redact_group, redact_parts
from cdc_verify.pipeline.capture.format import CaptureWriter
from cdc_verify.pipeline.sinks.groups import Fingerprint

from ..shape_corpus import comment, entry, known_shapes


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


# What --redact must keep out of cases.json: the values under /body, /author_id and
# /rich_text of both sides, enum-like (so shapes' parts carry them), one in an error text.
SECRETS = ("SECRET-BODY-A", "SECRET-BODY-B", "SECRET-AUTHOR-1", "SECRET-AUTHOR-2",
           "SECRET-RICH", "SECRET-BODY-SISTER", "SECRET-BODY-BOOM")  # fmt: skip
CONSUMER = """
from cdc_verify.consumers.reference import decode_event

def decode(fields):
    value = decode_event(fields)
    if value["body"].startswith("BOOM"):
        raise ValueError(f"cannot render {value['body']!r}")
    return value
"""


def secret_captures(tmp_path: Path) -> tuple[Path, Path]:
    production, sister = [], []
    for n in range(12):
        value = comment("plain", n)
        rich = [{"e": "text", "t": "SECRET-RICH"}] if n % 3 == 0 else None
        value.update(body=f"SECRET-BODY-{'AB'[n % 2]}", author_id=f"SECRET-AUTHOR-{n % 2 + 1}",
                     rich_text=rich)  # fmt: skip
        production.append(entry(PRODUCTION, 1000 + 10 * n, f"e{n}", value))
        twin = dict(value)
        if n == 4:
            twin["body"] = "SECRET-BODY-SISTER"  # a /body mismatch
        if n == 5:
            twin["body"] = "BOOM SECRET-BODY-BOOM"  # the sister's error quotes it
        sister.append(entry(SISTER, 1001 + 10 * n, f"e{n}", twin))
    return capture(tmp_path / "p.cap", production), capture(tmp_path / "s.cap", sister)


def test_no_redacted_value_is_left_anywhere_in_the_output(tmp_path, monkeypatch):
    (tmp_path / "secret_consumer.py").write_text(CONSUMER)
    monkeypatch.syspath_prepend(str(tmp_path))
    prod, sis = secret_captures(tmp_path)
    args = ["--production", str(prod), "--sister", str(sis), "--grace", "0.1",
            "--consumer", "secret_consumer:decode"]  # fmt: skip
    plain, printed = cases(tmp_path, *args)
    # Unredacted, they are there (but the sister's mismatching body: cases are production's).
    assert [secret for secret in SECRETS if secret not in json.dumps(plain)] == [
        "SECRET-BODY-SISTER"
    ]
    assert "no --redact: " in printed and "gets production data as it is" in printed

    document, printed = cases(tmp_path, *args, "--redact", "/body", "--redact", "/author_id",
                              "--redact", "/rich_text")  # fmt: skip
    assert "no --redact" not in printed
    written = [p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()]
    fields = [base64.b64decode(v) for c in document["cases"] for v in c["fields"].values()]
    for blob in (*written, *fields, printed.encode()):
        assert b"SECRET" not in blob
    groups = {c["group"] for c in document["cases"]}
    assert {"/body value", "sister: <redacted>"} <= groups
    parts = {p for c in document["cases"] for p in c["parts"]}
    assert {"/body str=<redacted>", "/author_id str=<redacted>", "/rich_text list"} <= parts
    assert not any(p.startswith("/rich_text/") for p in parts)  # below a pointer: gone


def test_redacted_parts_and_groups():
    parts = ["/a\x00str\x00x", "/b\x00bool\x00true", "/m\x00map", "/m/k\x00str\x00v",
             "/l/*/t\x00str\x00y", "/l/*/n\x00int"]  # fmt: skip
    assert sorted(redact_parts(parts, ["/a", "/b", "/m", "/l/0/t"])) == [
        "/a\x00str\x00<redacted>", "/b\x00bool\x00true", "/l/*/n\x00int",
        "/l/*/t\x00str\x00<redacted>", "/m\x00map",
    ]  # fmt: skip
    group = Fingerprint("mismatch", None, "ValueError: x", (("/m/secret key", "value", None, None),
                        ("/z", "type", "int", "str")), "comment", "update")  # fmt: skip
    assert redact_group(group, ["/m"]) == group._replace(
        error="<redacted>", differences=(("/m/<redacted>", "value", None, None),
                                         ("/z", "type", "int", "str")))  # fmt: skip
    assert redact_group(group, []) == group
