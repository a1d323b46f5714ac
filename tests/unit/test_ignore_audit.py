"""--ignore-path is audited: each pattern counts the differences it suppressed."""

from __future__ import annotations

import random

import msgpack

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.diff import IgnoredPaths, StructuralDiff
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.runners.bounded import verify_to_reports
from cdc_verify.schemas.models import Summary
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

PATTERNS = ("/edited", "/awards/*/count", "/media")


def test_the_diff_counts_what_each_pattern_hid():
    diff = StructuralDiff(IgnoredPaths(PATTERNS))
    production = {"edited": False, "awards": [{"count": 1}, {"count": 2}, {"count": 3}],
                  "media": [{"w": 1, "h": 2}], "score": 1}  # fmt: skip
    sister = {"edited": 1.5, "awards": [{"count": 1}, {"count": 5}, {"count": 6}],
              "media": [{"w": 9, "h": 9}, {"w": 1}], "score": 2}  # fmt: skip
    suppressed: dict[str, int] = {}
    found = diff(production, sister, suppressed)
    assert [d.path for d in found] == ["/score"]
    # /media hides two value differences in its first item and one extra item.
    assert suppressed == {"/edited": 1, "/awards/*/count": 2, "/media": 3}
    assert diff(production, production, suppressed) == [] and suppressed["/edited"] == 1


def entry(side, ms, event_id, comment, raw_payload=None):
    fields = {
        b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update",
        b"entity_id": comment["id"].encode(), b"version": b"2", b"ts_ms": str(ms).encode(),
        b"encoding": b"msgpack", b"payload": raw_payload or encode_msgpack(comment),
    }  # fmt: skip
    return StreamEntry(side, f"{ms}-0", fields)


def test_summary_and_report_carry_exact_audit_counts(tmp_path):
    rng = random.Random(5)
    production, sister, expected = [], [], dict.fromkeys(PATTERNS, 0)
    for n in range(400):
        comment = sample_comment(rng, f"t1_{n}")
        comment["awards"] = [{"award_id": "a", "count": 1}, {"award_id": "b", "count": 2}]
        twin = dict(comment, awards=[dict(a) for a in comment["awards"]])
        if n % 4 == 0:
            twin["edited"] = 1_700_000_000.5 if comment["edited"] is False else False
            expected["/edited"] += 1
        if n % 5 == 0:
            twin["awards"][1]["count"] = 99
            expected["/awards/*/count"] += 1
        if n % 7 == 0:
            twin["score"] = comment["score"] + 1  # not ignored: a mismatch
        production.append(entry(PRODUCTION, 1000 + n, f"E{n}", comment))
        sister.append(entry(SISTER, 1000 + n, f"E{n}", twin))
    # float32 on the wire at an ignored path: the wire check's difference is counted too.
    comment = sample_comment(rng, "t1_f")
    comment["edited"] = 1.5
    raw = msgpack.packb(comment, use_bin_type=True)
    as_float32 = raw.replace(msgpack.packb(1.5), b"\xca" + bytes.fromhex("3fc00000"))
    production.append(entry(PRODUCTION, 2000, "F1", comment))
    sister.append(entry(SISTER, 2000, "F1", comment, as_float32))
    expected["/edited"] += 1

    config = VerifierConfig(grace_ms=1000, ignored_paths=PATTERNS)
    summary = verify_to_reports(Verifier(decode_event, config), production, sister, tmp_path)
    assert summary.ignored == expected
    written = Summary.model_validate_json((tmp_path / "summary.json").read_text())
    assert written.ignored == expected and written.ignored["/media"] == 0
    assert written.verdicts["mismatch"] == len(range(0, 400, 7))
    html = (tmp_path / "report.html").read_text()
    assert "<td><code>/awards/*/count</code></td><td class='n'>80</td>" in html
    assert "| `/edited` | 101 |" in (tmp_path / "summary.md").read_text()
