#!/usr/bin/env python3
"""Regenerate (or check) the Python code for ``src/cdc_verify/schemas/comment.proto``.

Run from the repository root::

    python scripts/generate_proto.py           # rewrite comment_pb2.py / comment_pb2.pyi
    python scripts/generate_proto.py --check   # exit 1 if the committed files are stale

Uses ``grpc_tools.protoc`` (dev dependency ``grpcio-tools``) with ``-I src`` so that the
generated module is importable as ``cdc_verify.schemas.comment_pb2``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

SRC_ROOT = Path("src")
PROTO = Path("cdc_verify/schemas/comment.proto")
GENERATED = ("comment_pb2.py", "comment_pb2.pyi")
DEFAULT_SCHEMAS_DIR = SRC_ROOT / PROTO.parent


def generate(out_root: Path) -> dict[str, bytes]:
    """Run protoc into ``out_root``; return {file name: content} of the generated files."""
    if not (SRC_ROOT / PROTO).is_file():
        raise SystemExit(
            f"generate_proto: {SRC_ROOT / PROTO} not found; run from the repository root"
        )
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{SRC_ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        str(PROTO),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"generate_proto: protoc failed (exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    out_dir = out_root / PROTO.parent
    return {name: (out_dir / name).read_bytes() for name in GENERATED}


def stale_files(schemas_dir: Path) -> list[str]:
    """Names of generated files in ``schemas_dir`` that differ from a fresh generation."""
    with tempfile.TemporaryDirectory(prefix="cdc-verify-proto-") as tmp:
        fresh = generate(Path(tmp))
    stale = []
    for name, content in fresh.items():
        committed = schemas_dir / name
        if not committed.is_file() or committed.read_bytes() != content:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the committed generated files differ from a fresh run",
    )
    parser.add_argument(
        "--schemas-dir",
        type=Path,
        default=DEFAULT_SCHEMAS_DIR,
        help=f"where the generated files live (default: {DEFAULT_SCHEMAS_DIR})",
    )
    args = parser.parse_args(argv)

    if args.check:
        stale = stale_files(args.schemas_dir)
        if stale:
            print(
                "generate_proto: generated code is out of date with "
                f"{SRC_ROOT / PROTO}: {', '.join(stale)} in {args.schemas_dir} differ from a "
                "fresh generation; run `python scripts/generate_proto.py` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"generate_proto: {', '.join(GENERATED)} are up to date")
        return 0

    with tempfile.TemporaryDirectory(prefix="cdc-verify-proto-") as tmp:
        fresh = generate(Path(tmp))
    args.schemas_dir.mkdir(parents=True, exist_ok=True)
    for name, content in fresh.items():
        (args.schemas_dir / name).write_bytes(content)
        print(f"generate_proto: wrote {args.schemas_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
