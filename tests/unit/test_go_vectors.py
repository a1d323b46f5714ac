"""Payloads encoded by the Go writer (committed under tests/vectors), verified without Go.

tests/integration/test_gowriter.py fails when these files and the Go writer disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.verifier import Verifier
from cdc_verify.simulate.scenario import legacy_fields, read_scenario

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())
CHANGES = {c["event_id"]: c for c in read_scenario(VECTORS / "scenario.jsonl")}
VARIANTS = {"default", "protobuf", "nil-awards", "time-created", "float32", "omitempty",
            "bytes-body", "int-created", "edited-zero", "untagged"}  # fmt: skip


def test_every_divergence_has_vectors():
    assert {v["variant"] for v in MANIFEST} == VARIANTS
    assert all(v["event_id"] in CHANGES for v in MANIFEST)


@pytest.mark.parametrize("vector", MANIFEST, ids=lambda v: f"{v['variant']}-{v['event_id'][-4:]}")
def test_go_encoded_payload_gets_its_expected_verdict(vector):
    production = legacy_fields(CHANGES[vector["event_id"]])
    sister = {
        **production,
        b"encoding": vector["encoding"].encode(),
        b"payload": (VECTORS / vector["file"]).read_bytes(),
    }
    [outcome] = Verifier(decode_event).ingest(
        [StreamEntry(PRODUCTION, "1-0", production), StreamEntry(SISTER, "2-0", sister)]
    )
    record = outcome.record.as_json()
    want = vector["expected"]
    assert record["verdict"] == want["verdict"]
    assert record.get("side") == want.get("side")
    got = sorted((d["path"], d["kind"]) for d in record.get("differences", []))
    assert got == sorted((d["path"], d["kind"]) for d in want.get("differences", []))
    if vector["variant"] == "float32":
        assert {d["sister_wire"] for d in record["differences"]} == {"float32"}
