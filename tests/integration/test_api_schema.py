"""Schemathesis drives every operation of the OpenAPI document against a live worker.

It generates requests from the document, valid ones and invalid ones, and checks each
answer: no server error, a status code and content type the document declares,
and a body that validates against the declared schema.

(Hypothesis strategies per operation rather than `schemathesis.pytest.from_fixture`,
whose lazy loader reads a private pytest attribute that pytest 9.2 removed.)
"""

from __future__ import annotations

import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from .support import PROD, SIS, ServedWorker, primary_count, wait_for
from .support import settings as worker_settings

TOKEN = "schemathesis-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_every_operation_keeps_to_the_openapi_document(tmp_path):
    with EmbeddedRedis(data_dir=tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        corpus = generate(600, seed=8, grace_ms=500)
        write_corpus(client, corpus, PROD, SIS, past_base_ms(client, corpus))
        cfg = worker_settings(server.url, grace=0.5, http_token=TOKEN)
        with ServedWorker(cfg) as served:
            wait_for(lambda: primary_count(client) >= len(corpus.expected), what="all verdicts")
            schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
            tested = []
            for result in schema.get_all_operations():
                operation = result.ok()
                # The token goes in as an explicit header, not as an override at call time:
                # an override would replace an Authorization header schemathesis negated,
                # and it would then judge the answer to a request that was never sent.
                strategy = operation.as_strategy(
                    generation_mode=GenerationMode.POSITIVE, headers=AUTH
                ) | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, headers=AUTH)

                @given(case=strategy)
                @settings(max_examples=60, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))  # fmt: skip
                def exercise(case: schemathesis.Case) -> None:
                    case.call_and_validate()

                exercise()
                tested.append(operation.label)
        client.close()
    assert sorted(tested) == [
        "GET /api/alerts", "GET /api/coverage", "GET /api/events/{event_id}", "GET /api/gate",
        "GET /api/groups", "GET /api/status",
        "GET /healthz", "GET /metrics", "GET /readyz",
    ]  # fmt: skip
