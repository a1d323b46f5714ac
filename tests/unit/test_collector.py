"""The worker's garbage-collector thresholds: raised while any worker runs, then restored."""

from __future__ import annotations

import gc

from cdc_verify.pipeline.runners.collector import YOUNG_THRESHOLD, fewer_collections


def test_the_young_threshold_is_raised_while_workers_run_and_restored_after_the_last():
    before = gc.get_threshold()
    with fewer_collections():
        raised = gc.get_threshold()
        assert raised == (max(YOUNG_THRESHOLD, before[0]), *before[1:])
        with fewer_collections():  # a second worker in the same process
            assert gc.get_threshold() == raised
        assert gc.get_threshold() == raised  # the first still runs
    assert gc.get_threshold() == before
