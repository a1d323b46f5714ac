"""The committed protobuf code is current, and the schema carries the msgpack map exactly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from cdc_verify.consumers.reference import KNOWN_KEYS
from cdc_verify.schemas import comment_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "generate_proto.py"
SCHEMAS = REPO_ROOT / "src" / "cdc_verify" / "schemas"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_committed_generated_code_is_current() -> None:
    result = run_script("--check")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_check_fails_clearly_on_stale_code(tmp_path: Path) -> None:
    for name in ("comment_pb2.py", "comment_pb2.pyi"):
        shutil.copy(SCHEMAS / name, tmp_path / name)
    stale = tmp_path / "comment_pb2.pyi"
    stale.write_text(stale.read_text() + "\n# hand edit\n")
    result = run_script("--check", "--schemas-dir", str(tmp_path))
    assert result.returncode == 1
    assert "comment_pb2.pyi" in result.stderr
    assert "comment_pb2.py," not in result.stderr  # only the stale file is named
    assert "out of date" in result.stderr


def test_check_fails_when_generated_file_is_missing(tmp_path: Path) -> None:
    shutil.copy(SCHEMAS / "comment_pb2.py", tmp_path / "comment_pb2.py")
    result = run_script("--check", "--schemas-dir", str(tmp_path))
    assert result.returncode == 1
    assert "comment_pb2.pyi" in result.stderr


def test_file_options() -> None:
    file = comment_pb2.DESCRIPTOR
    assert file.package == "cdcverify.v1"
    assert file.name == "cdc_verify/schemas/comment.proto"
    assert (
        file.GetOptions().go_package
        == "github.com/cdc-verify/cdc-verify/tests/gowriter/commentpb;commentpb"
    )


def test_comment_fields_are_exactly_the_msgpack_keys() -> None:
    names = [field.name for field in comment_pb2.Comment.DESCRIPTOR.fields]
    assert names == list(KNOWN_KEYS)


F = FieldDescriptor
EXPECTED_TYPES = {
    "id": F.TYPE_STRING,
    "link_id": F.TYPE_STRING,
    "parent_id": F.TYPE_STRING,
    "subreddit_id": F.TYPE_STRING,
    "author_id": F.TYPE_STRING,
    "body": F.TYPE_STRING,
    "rich_text": F.TYPE_MESSAGE,
    "media": F.TYPE_MESSAGE,
    "score": F.TYPE_INT64,
    "ups": F.TYPE_INT64,
    "downs": F.TYPE_INT64,
    "gilded": F.TYPE_INT64,
    "awards": F.TYPE_MESSAGE,
    "approval_state": F.TYPE_STRING,
    "automod_filtered": F.TYPE_BOOL,
    "stickied": F.TYPE_BOOL,
    "distinguished": F.TYPE_STRING,
    "edited": F.TYPE_DOUBLE,
    "created_utc": F.TYPE_DOUBLE,
}
# Fields whose unset state means something (nil / false) must track presence.
PRESENCE = {"rich_text", "media", "distinguished", "edited"}


@pytest.mark.parametrize("name", KNOWN_KEYS)
def test_comment_field_type_and_presence(name: str) -> None:
    field = comment_pb2.Comment.DESCRIPTOR.fields_by_name[name]
    assert field.type == EXPECTED_TYPES[name]
    assert field.is_repeated == (name == "awards")
    if name in PRESENCE:
        assert field.has_presence


def test_nested_messages() -> None:
    rich_text = comment_pb2.RichText.DESCRIPTOR
    assert [f.name for f in rich_text.fields] == ["e", "t", "u"]
    assert rich_text.fields_by_name["u"].has_presence
    assert not rich_text.fields_by_name["e"].has_presence
    media = comment_pb2.Media.DESCRIPTOR
    assert [(f.name, f.type) for f in media.fields] == [
        ("type", F.TYPE_STRING),
        ("url", F.TYPE_STRING),
        ("width", F.TYPE_INT64),
        ("height", F.TYPE_INT64),
        ("content_type", F.TYPE_STRING),
    ]
    award = comment_pb2.Award.DESCRIPTOR
    assert [(f.name, f.type) for f in award.fields] == [
        ("award_id", F.TYPE_STRING),
        ("count", F.TYPE_INT64),
    ]
    for wrapper, item in ((comment_pb2.RichTextList, rich_text), (comment_pb2.MediaList, media)):
        (items,) = wrapper.DESCRIPTOR.fields
        assert items.name == "items" and items.is_repeated
        assert items.message_type is item
