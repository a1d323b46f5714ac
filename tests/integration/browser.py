"""Headless Chromium driven over its DevTools pipe: load a page, run a script in it, get
the value back. For what --dump-dom cannot show: layout, and a page's own functions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from .test_report_html import CHROMIUM_FLAGS

# No name resolves but loopback's: a page that needs anything from elsewhere fails here
# as it would on a machine without a network.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"


class DevTools:
    def __init__(self, profile: Path, width: int, height: int) -> None:
        chromium = shutil.which("chromium")
        assert chromium, "Debian's chromium is required (scripts/setup installs it)"
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()

        def pipes_as_3_and_4() -> None:  # the fds --remote-debugging-pipe reads and writes
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self._proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, OFFLINE, f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=pipes_as_3_and_4, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        page = next(t for t in self.call("Target.getTargets")["targetInfos"]
                    if t["type"] == "page")  # fmt: skip
        attached = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        self._session = attached["sessionId"]

    def call(self, method: str, session: str | None = None, **params: Any) -> Any:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            while b"\0" not in self._buffer:
                assert time.monotonic() < deadline, f"no answer to {method}"
                chunk = os.read(self._replies, 1 << 16)
                assert chunk, "chromium closed its DevTools pipe"
                self._buffer += chunk
            raw, _, self._buffer = self._buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, reply["error"]
                return reply["result"]

    def evaluate(self, url: str, expression: str) -> Any:
        """Opens `url`, then awaits `expression` (a promise, or a value) in the page."""
        self.call("Page.navigate", self._session, url=url)
        loaded = "document.readyState === 'complete' ? location.href : null"
        deadline = time.monotonic() + 30
        while True:
            at = self.call("Runtime.evaluate", self._session, expression=loaded,
                           returnByValue=True)["result"].get("value")  # fmt: skip
            if at not in (None, "about:blank"):
                break
            assert time.monotonic() < deadline, f"{url} did not load"
            time.sleep(0.05)
        result = self.call("Runtime.evaluate", self._session, expression=expression,
                           awaitPromise=True, returnByValue=True)  # fmt: skip
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait(10)
        os.close(self._commands)
        os.close(self._replies)

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(condition: str, then: str, seconds: float = 20) -> str:
    """A script that polls `condition` in the page, then gives the value of `then`; it
    fails after `seconds`."""
    return (
        "new Promise((done, fail) => { const t = setInterval(() => { "
        f"if ({condition}) {{ clearInterval(t); done({then}); }} }}, 50); "
        f"setTimeout(() => fail(new Error({json.dumps('never true: ' + condition)})), "
        f"{seconds * 1000:.0f}); }})"
    )
