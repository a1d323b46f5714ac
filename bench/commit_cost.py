"""What the commit script costs the state server, per stream entry, measured by replay.

Runs the verifier once on a corpus (as throughput.py does, shapes on) and records every
script call it makes to the state server: the commits (commit.lua) and the decision
lookups (decisions.py). Then replays those very calls, in order, several times: each
time on the same streams, with the verifier's group made anew and every entry pending in
it (as the verifier's reads leave them) and every other key gone, and measures the CPU
time of redis-server's main thread (where commands and scripts run) during the replay
alone. Commits are replayed
with EVALSHA and lookups with EVAL, so that INFO commandstats tells the two apart; the
commands each script calls are counted under their own names too.

`--script FILE` replays the commits with another body for commit.lua (the same
preamble, the same recorded arguments): a change to the script alone, or a part of it
left out, is then measured side by side with the script as it is, on the same calls.
`--no-lookups` replays the commits alone. `--callgrind` replays each once on a
redis-server under valgrind's callgrind and prints the instructions it executed per
entry: exact and repeatable where CPU time on a shared machine is not, and a profile
(callgrind_annotate) of where they go; `--perf` records one with `perf record` instead.

    .venv/bin/python bench/commit_cost.py [--events 20000] [--repeat 3]
    .venv/bin/python bench/commit_cost.py --script /tmp/commit-variant.lua
    .venv/bin/python bench/commit_cost.py --no-lookups --callgrind   # ~2 min
    .venv/bin/python bench/commit_cost.py --events 10000 --whole-run   # ~1 min
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import versions
from throughput import PROD, SIS, raw_drain, run_verifier

from cdc_verify.embedded_redis import EmbeddedRedis, find_redis_server
from cdc_verify.pipeline.redis import commit as commit_module
from cdc_verify.pipeline.redis import decisions as decisions_module
from cdc_verify.pipeline.redis.commit import COMMIT, VerdictCommitter
from cdc_verify.pipeline.redis.decisions import LOOKUP_SCRIPT, DecisionStore
from cdc_verify.simulate.corpus import Corpus, generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus


@dataclass
class Recorded:
    commits: list[tuple[list[Any], list[Any]]] = field(default_factory=list)
    calls: list[tuple[str, list[Any], list[Any]]] = field(default_factory=list)


def record_calls(recorded: Recorded) -> None:
    """Wraps the committer's and the lookup's scripts to record each call's keys and args."""
    commit_init, store_init = VerdictCommitter.__init__, DecisionStore.__init__

    def wrap(kind: str, script: Any) -> Any:
        async def call(keys: Any, args: Any) -> Any:
            recorded.calls.append((kind, list(keys), list(args)))
            return await script(keys=keys, args=args)

        return call

    def committer(self: VerdictCommitter, *a: Any, **k: Any) -> None:
        commit_init(self, *a, **k)
        self._script = wrap("commit", self._script)

    def store(self: DecisionStore, *a: Any, **k: Any) -> None:
        store_init(self, *a, **k)
        self._script = wrap("lookup", self._script)

    commit_module.VerdictCommitter.__init__ = committer  # type: ignore[method-assign]
    decisions_module.DecisionStore.__init__ = store  # type: ignore[method-assign]


def reset(client: redis.Redis, group: str, lock: str, token: str) -> None:
    """Every key but the two streams gone; the group anew, every entry pending in it."""
    for key in list(client.scan_iter(count=1000)):
        if key.decode() not in (PROD, SIS):
            client.unlink(key)
    for stream in (PROD, SIS):
        client.xgroup_destroy(stream, group)
        client.xgroup_create(stream, group, id="0")
    while client.xreadgroup(group, "replay", {PROD: ">", SIS: ">"}, count=5000):
        pass
    if token:
        client.set(lock, token)
    # No AOF rewrite during a replay: its child and the copy-on-write it causes would
    # blur what the calls cost (the AOF itself stays on: propagating writes is theirs).
    client.config_set("auto-aof-rewrite-percentage", 0)
    client.bgrewriteaof()  # a small AOF again, so that each replay starts alike
    while client.info("persistence")["aof_rewrite_in_progress"]:
        time.sleep(0.05)
    time.sleep(0.2)  # lets the lazy frees of UNLINK finish before measuring


def _main_thread_cpu(pid: int) -> float:
    """Seconds redis-server's main thread has run (the scheduler's count, in ns): what
    commands and scripts take; the background threads (fsync, lazy free) are not in it."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def replay(
    client: redis.Redis, recorded: Recorded, commit_sha: str, lookups: bool, perf: Path | None
) -> tuple[float, dict[str, Any]]:
    """CPU seconds of redis-server's main thread during the recorded calls, and the
    commandstats and AOF bytes; with `perf`, a `perf record` of the replay goes there."""
    pid = int(client.info("server")["process_id"])
    client.config_resetstat()
    recorder = None
    if perf is not None:
        recorder = subprocess.Popen(
            ["perf", "record", "-q", "-F", "4999", "--call-graph", "dwarf,16384",
             "-p", str(pid), "-o", str(perf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # perf attaches
    aof_before = client.info("persistence")["aof_current_size"]
    before = _main_thread_cpu(pid)
    for kind, keys, args in recorded.calls:
        if kind == "commit":
            client.evalsha(commit_sha, len(keys), *keys, *args)
        elif lookups:
            client.eval(LOOKUP_SCRIPT, len(keys), *keys, *args)
    used = _main_thread_cpu(pid) - before
    aof_bytes = client.info("persistence")["aof_current_size"] - aof_before
    if recorder is not None:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(30)
    return used, {**client.info("commandstats"), "aof_bytes": aof_bytes}


def callgrind_server(stack: ExitStack, out: Path) -> EmbeddedRedis:
    """A redis-server run under callgrind, its instrumentation off until switched on."""
    wrapper = out.with_name(out.name + ".redis-server")
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file={out}.%p"
        f' {find_redis_server()} "$@"\n'
    )
    wrapper.chmod(0o755)
    server = EmbeddedRedis()
    os.environ["CDC_VERIFY_REDIS_SERVER"] = str(wrapper)
    try:
        server.start(timeout=120)
    finally:
        del os.environ["CDC_VERIFY_REDIS_SERVER"]
    stack.callback(server.close)
    return server


def callgrind_totals(pid: int, name: str) -> int:
    """Dumps the instructions counted since the last dump; returns their number."""
    subprocess.run(["callgrind_control", "-d", name, str(pid)], check=True, capture_output=True)
    dumps = sorted(Path(".").glob(f"{_CALLGRIND_OUT}.{pid}.*"), key=lambda p: p.stat().st_mtime)
    for line in reversed(dumps[-1].read_text(errors="replace").splitlines()):
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dumps[-1]}")


_CALLGRIND_OUT = "callgrind.out"


def whole_run(corpus: Corpus, batch: int) -> None:
    """The raw drain, then the verifier, on a server under callgrind."""
    entries = len(corpus.production) + len(corpus.sister)
    with ExitStack() as stack:
        server = callgrind_server(stack, Path(_CALLGRIND_OUT).resolve())
        assert server.pid is not None
        client = stack.enter_context(redis.Redis.from_url(server.url))
        write_corpus(client, corpus, PROD, SIS, past_base_ms(client, corpus))
        print(versions(client))
        callgrind_totals(server.pid, "before")
        subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], capture_output=True)
        asyncio.run(raw_drain(server.url, batch))
        raw = callgrind_totals(server.pid, "raw drain") / entries
        asyncio.run(run_verifier(server.url, batch, entries, len(corpus.expected), None, 900.0))
        verifier = callgrind_totals(server.pid, "verifier") / entries
    print(
        f"{entries:,} entries, redis-server instructions per entry: raw drain {raw:,.0f},"
        f" verifier {verifier:,.0f} ({verifier / raw:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="logical changes (pairs)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="replays of each script")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--script", type=Path, action="append", default=[],
        help="another body for commit.lua, replayed beside the script as it is (repeatable)",
    )  # fmt: skip
    parser.add_argument("--no-lookups", action="store_true", help="replay the commits alone")
    parser.add_argument("--top", type=int, default=14, help="commands listed per script")
    parser.add_argument(
        "--perf", type=Path,
        help="`perf record -g` redis-server during each script's last replay, to PERF.<script>",
    )  # fmt: skip
    parser.add_argument(
        "--callgrind", action="store_true",
        help="replay once each on a redis-server under valgrind's callgrind and print the "
        "instructions it executed per entry (exact, unlike CPU time on a shared machine); "
        "each replay's profile is left in ./callgrind.out.<pid>.<n> for callgrind_annotate",
    )  # fmt: skip
    parser.add_argument(
        "--whole-run", action="store_true",
        help="instead: the raw drain and then the verifier (throughput.py's), each on its "
        "own group, against one redis-server under callgrind: its instructions per entry "
        "for each, and their ratio (issue 25's state-server target, exactly)",
    )  # fmt: skip
    args = parser.parse_args()

    corpus = generate(args.events, seed=args.seed, grace_ms=2000, rate=5_000.0)
    entries = len(corpus.production) + len(corpus.sister)
    if args.whole_run:
        whole_run(corpus, args.batch)
        return
    recorded = Recorded()
    record_calls(recorded)
    with ExitStack() as stack:
        server = stack.enter_context(EmbeddedRedis())
        client = stack.enter_context(redis.Redis.from_url(server.url))
        base_ms = past_base_ms(client, corpus)
        write_corpus(client, corpus, PROD, SIS, base_ms)
        print(versions(client))
        run = asyncio.run(
            run_verifier(server.url, args.batch, entries, len(corpus.expected), None, 600.0)
        )
        commits = [c for c in recorded.calls if c[0] == "commit"]
        group = commits[0][2][COMMIT.args.index("group")]
        token = commits[0][2][COMMIT.args.index("lock_token")]
        lock = commits[0][1][COMMIT.keys.index("lock")]
        repeat = 1 if args.callgrind else args.repeat
        print(
            f"corpus: {args.events:,} events, {entries:,} entries; verified in {run.seconds:.1f}s;"
            f" recorded {len(commits):,} commits and {len(recorded.calls) - len(commits):,}"
            f" lookups; replayed {repeat}x each, alternating"
        )
        if args.callgrind:  # the same entries (ids and all) on a server under callgrind
            server = callgrind_server(stack, Path(_CALLGRIND_OUT).resolve())
            client = stack.enter_context(redis.Redis.from_url(server.url))
            write_corpus(client, corpus, PROD, SIS, base_ms)
        preamble = COMMIT.preamble()
        scripts = {"as is": commit_module.COMMIT_SCRIPT}
        for path in args.script:
            scripts[path.name] = decisions_module.GENERATIONS_LUA + path.read_text("utf-8")
        shas = {name: client.script_load(preamble + body) for name, body in scripts.items()}
        used: dict[str, list[float]] = {name: [] for name in scripts}
        stats: dict[str, dict[str, Any]] = {}
        for i in range(repeat):
            for name, sha in shas.items():
                reset(client, group, lock, token)
                tag = re.sub(r"\W", "_", name)
                if args.callgrind:
                    assert server.pid is not None
                    pid = str(server.pid)
                    callgrind_totals(server.pid, "before " + tag)  # what the reset did
                    subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True)
                    _, stats[name] = replay(client, recorded, sha, not args.no_lookups, None)
                    subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True)
                    used[name].append(callgrind_totals(server.pid, tag))
                    continue
                perf = None
                if args.perf and i == repeat - 1:
                    perf = args.perf.with_name(f"{args.perf.name}.{tag}")
                seconds, stats[name] = replay(client, recorded, sha, not args.no_lookups, perf)
                if perf is None:
                    used[name].append(seconds)
        for name in scripts:
            if args.callgrind:
                print(f"\n{name}: instructions per entry: {used[name][0] / entries:,.0f}")
            else:
                runs = sorted(s / entries * 1e6 for s in used[name])
                print(
                    f"\n{name}: redis-server CPU µs/entry over the replay: min {runs[0]:.2f},"
                    f" median {statistics.median(runs):.2f}"
                    f" ({', '.join(f'{r:.2f}' for r in runs)})"
                )
            print(f"  AOF bytes per entry: {stats[name].pop('aof_bytes') / entries:,.0f}")
            rows = sorted(
                ((k.removeprefix("cmdstat_"), v) for k, v in stats[name].items()),
                key=lambda kv: -kv[1]["usec"],
            )
            for cmd, v in rows[: args.top]:
                label = {"evalsha": "evalsha (commits)", "eval": "eval (lookups)"}.get(cmd, cmd)
                print(
                    f"  {label:<18} {v['usec'] / entries:6.2f} µs/entry"
                    f"  {v['calls'] / entries:6.3f} calls/entry  {v['usec_per_call']:8.2f} µs/call"
                )


if __name__ == "__main__":
    main()
