"""`cdc-verify replay`: verify two capture files with the same core and grace as backfill.

Both runners feed `verify_to_reports`, so the same data gets the same verdicts, and
replay runs on event time (entry-id time) as fast as the files can be read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from cdc_verify.config.settings import Settings
from cdc_verify.core.decoder import Consumer
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry, fields_dict
from cdc_verify.core.envelope import Envelope
from cdc_verify.core.verifier import Verifier
from cdc_verify.pipeline.capture.format import CaptureReader
from cdc_verify.pipeline.runners.bounded import settings_provenance, verify_to_reports
from cdc_verify.pipeline.runners.wiring import side_envelopes, verifier_config
from cdc_verify.schemas.models import Summary
from cdc_verify.schemas.verdicts import Side


def read_capture(
    reader: CaptureReader, side: Side, envelope: Envelope | None = None
) -> Iterator[StreamEntry]:
    """A capture holds the entries as the stream had them: `envelope` reads them."""
    for entry_id, flat in reader:  # the reader checked each entry's shape
        yield StreamEntry.from_redis(side, entry_id, fields_dict(flat), envelope)


def run_replay(
    settings: Settings,
    consumer: Consumer,
    production: Path,
    sister: Path,
    out_dir: Path,
    on_progress: Callable[[int], None] | None = None,
) -> Summary:
    # Both files are opened (and their headers checked) before any work is done.
    with CaptureReader(production) as prod, CaptureReader(sister) as sis:
        verifier = Verifier(consumer, verifier_config(settings, shapes=True))
        envelopes = side_envelopes(settings)
        provenance = [
            ("production", f"capture {production}"),
            ("sister", f"capture {sister}"),
            *settings_provenance(settings),
        ]
        return verify_to_reports(
            verifier,
            read_capture(prod, PRODUCTION, envelopes[PRODUCTION]),
            read_capture(sis, SISTER, envelopes[SISTER]),
            out_dir,
            on_progress,
            provenance,
        )
