"""A real single-node Kafka broker for tests, run by deploy/kafka/kafka.sh (jars from Maven)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"

# The first start may fetch the jars (~70 MB incl. Maven's own plugins on a cold ~/.m2),
# then waits up to 120 s for the broker.
START_TIMEOUT = 600.0
STOP_TIMEOUT = 60.0

_READY = re.compile(r"^kafka: ready on (?P<bootstrap>127\.0\.0\.1:\d+) in (?P<secs>[\d.]+)s$", re.M)
_CONTROLLER = re.compile(r"controller 127\.0\.0\.1:(?P<port>\d+)")


def require_tools() -> None:
    """Fail (not skip) with a clear message when the broker cannot be fetched or run."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    assert not missing, (
        f"{' and '.join(missing)} not found on PATH: the Kafka tests run a real broker "
        "(deploy/kafka/kafka.sh) and need a JDK 17+ and Maven 3.8+ "
        "(Debian: apt-get install openjdk-17-jdk-headless maven)"
    )


def run_kafka_sh(*args: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KAFKA_SH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class KafkaBroker:
    """`with KafkaBroker(tmp_path / "kafka") as broker: ... broker.bootstrap ...`"""

    def __init__(
        self, data_dir: Path, port: int | None = None, controller_port: int | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.controller_port = controller_port
        self.bootstrap = ""
        self.start_seconds = 0.0
        self.pid = 0
        self.output = ""

    @property
    def broker_port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    def start(self) -> KafkaBroker:
        require_tools()
        args = ["start", "--dir", str(self.data_dir)]
        if self.port is not None:
            args += ["--port", str(self.port)]
        if self.controller_port is not None:
            args += ["--controller-port", str(self.controller_port)]
        result = run_kafka_sh(*args)
        self.output = result.stdout + result.stderr
        ready = _READY.search(result.stdout)
        if result.returncode != 0 or not ready:
            self._stop()  # kafka.sh cleans up after itself; this is belt and braces
            raise AssertionError(
                f"kafka.sh start failed (exit {result.returncode}):\n{self.output}"
            )
        self.bootstrap = ready["bootstrap"]
        self.start_seconds = float(ready["secs"])
        controller = _CONTROLLER.search(result.stdout)
        assert controller, result.stdout
        self.controller_port = int(controller["port"])
        self.pid = int((self.data_dir / "kafka.pid").read_text().strip())
        return self

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 30 s); a no-op when it is not running."""
        if self.pid or (self.data_dir / "kafka.pid").exists():
            self._stop()

    def _stop(self) -> None:
        result = run_kafka_sh("stop", "--dir", str(self.data_dir), timeout=STOP_TIMEOUT)
        assert result.returncode == 0, (
            f"kafka.sh stop failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
