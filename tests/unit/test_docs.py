"""docs/ stays in step with the code: names, commands, flags, settings, files and links.

Everything checked here is read from the code at test time (the click group, the
pydantic models, the report writer), so a flag or a verdict added to the code fails
this test until the docs name it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from cdc_verify.api.models import Alert
from cdc_verify.cli import main
from cdc_verify.config.settings import Settings
from cdc_verify.consumers.reference import KNOWN_KEYS, decode_event
from cdc_verify.core.verifier import Verifier
from cdc_verify.pipeline.reports.files import REPORT_FILES
from cdc_verify.pipeline.runners.bounded import verify_to_reports
from cdc_verify.schemas.models import DifferenceModel, Summary, VerdictRecordModel
from cdc_verify.schemas.verdicts import DifferenceKind, Side, Verdict

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
LINKED_FILES = [*PAGES, ROOT / "README.md"]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def names_in_code(doc: str, word: str) -> bool:
    """`word` appears as (or starts) an inline code span: `word` or `word ...`."""
    return re.search(rf"`{re.escape(word)}(?:`|[\s=\[(])", doc) is not None


def mentions_flag(doc: str, flag: str) -> bool:
    """`--flag` appears on its own, not as the start of a longer flag (--redis-username)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", doc) is not None


def sections(doc: str) -> dict[str, str]:
    """Second-level sections of a page by heading text: '## `run`' -> {'`run`': body}."""
    out: dict[str, str] = {}
    parts = re.split(r"^## +(.+?)\s*$", FENCE.sub("", doc), flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        out[heading] = body
    return out


def long_options(command: click.Command) -> Iterator[str]:
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                if opt.startswith("--"):
                    yield opt


# -- verdicts.md -------------------------------------------------------------------


@pytest.mark.parametrize("name", [*Verdict, *Side, *DifferenceKind], ids=str)
def test_every_verdict_side_and_difference_kind_is_named_in_verdicts_md(name):
    assert names_in_code(page("verdicts.md"), name.value), f"docs/verdicts.md lacks `{name}`"


@pytest.mark.parametrize(
    "key", [*VerdictRecordModel.model_fields, *DifferenceModel.model_fields], ids=str
)
def test_every_record_and_difference_key_is_in_verdicts_md(key):
    assert names_in_code(page("verdicts.md"), key), f"docs/verdicts.md lacks the key `{key}`"


# -- commands.md -------------------------------------------------------------------


def test_every_command_has_its_section_in_commands_md():
    headings = sections(page("commands.md"))
    missing = [name for name in main.commands if f"`{name}`" not in headings]
    assert not missing, f"docs/commands.md has no '## `NAME`' section for {missing}"


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_long_option_of_a_command_is_in_its_section_of_commands_md(name):
    body = sections(page("commands.md")).get(f"`{name}`", "")
    missing = [opt for opt in long_options(main.commands[name]) if not mentions_flag(body, opt)]
    assert not missing, f"docs/commands.md, section `{name}`, does not mention {missing}"


def test_the_group_options_are_in_commands_md():
    doc = page("commands.md")
    missing = [opt for opt in long_options(main) if not mentions_flag(doc, opt)]
    assert not missing, f"docs/commands.md does not mention {missing}"


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_commands_md_with_its_environment_variable(field):
    doc = page("commands.md")
    assert names_in_code(doc, field), f"docs/commands.md lacks the setting `{field}`"
    env = f"CDC_VERIFY_{field.upper()}"
    assert names_in_code(doc, env), f"docs/commands.md lacks `{env}`"


# -- reports.md, wire-format.md ----------------------------------------------------


def test_every_file_a_bounded_run_writes_is_in_reports_md(tmp_path):
    verify_to_reports(Verifier(decode_event), [], [], tmp_path)
    written = {p.name for p in tmp_path.iterdir()}
    assert written, "verify_to_reports wrote nothing"
    doc = page("reports.md")
    missing = [name for name in sorted(written | set(REPORT_FILES)) if not names_in_code(doc, name)]
    assert not missing, f"docs/reports.md does not describe {missing}"


@pytest.mark.parametrize("key", [*Summary.model_fields, *Alert.model_fields], ids=str)
def test_every_summary_and_alert_key_is_in_reports_md(key):
    assert names_in_code(page("reports.md"), key), f"docs/reports.md lacks the key `{key}`"


@pytest.mark.parametrize("key", KNOWN_KEYS)
def test_every_payload_key_is_in_wire_format_md(key):
    assert names_in_code(page("wire-format.md"), key), f"docs/wire-format.md lacks `{key}`"


# -- the index and links -----------------------------------------------------------


def test_the_index_links_every_page():
    index = page("README.md")
    targets = {target.partition("#")[0] for target in links(index)}
    missing = [p.name for p in PAGES if p.name != "README.md" and p.name not in targets]
    assert not missing, f"docs/README.md does not link {missing}"


def links(text: str) -> list[str]:
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    return [*INLINE_LINK.findall(prose), *REFERENCE_LINK.findall(prose)]


def relative_links(path: Path) -> Iterator[tuple[str, Path, str]]:
    """(link as written, the file it names, its #fragment) for every relative link."""
    for target in links(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # http:, https:, mailto: ...
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path.resolve()
        yield target, resolved, fragment


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: rendered text, lower case, punctuation dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


@pytest.mark.parametrize("path", LINKED_FILES, ids=_rel)
def test_every_relative_link_resolves(path):
    broken = []
    for target, resolved, fragment in relative_links(path):
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target} (no heading #{fragment} in {resolved.name})")
    assert not broken, f"{_rel(path)}: broken links {broken}"


@pytest.mark.parametrize("path", LINKED_FILES, ids=_rel)
def test_no_relative_link_leaves_the_repository(path):
    # A link out of the repository resolves on this machine but is dead in every clone.
    outside = [t for t, resolved, _ in relative_links(path) if not resolved.is_relative_to(ROOT)]
    assert not outside, f"{_rel(path)} links outside the repository: {outside}"


# -- The README and docs say what the code does (issue 22: docs that said otherwise) -----

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_report_files_section_lists_every_file_backfill_writes():
    # The README's backfill tour moved to reports.md: its table names every file.
    files = sections(page("reports.md"))["The six files of `backfill` and `replay`"]
    assert [name for name in REPORT_FILES if f"| `{name}` |" not in files] == []


def test_the_readme_layout_names_every_package_and_module():
    layout = README[README.index("src/cdc_verify/\n") :]
    layout = layout[: layout.index("```")]
    src = ROOT / "src" / "cdc_verify"
    names = [f"{p.name}/" for p in src.iterdir() if (p / "__init__.py").exists()]
    names += [p.name for p in src.glob("*.py") if p.name != "__init__.py"]
    assert [name for name in names if not re.search(rf"(^|\s){re.escape(name)}", layout)] == []


def test_the_faust_ratio_is_the_same_everywhere():
    said = re.compile(r"(?:does|do) (0\.\d+) to (0\.\d+) of the single worker")
    found = {
        match.groups()
        for path in LINKED_FILES
        for match in said.finditer(" ".join(path.read_text(encoding="utf-8").split()))
    }
    assert len(found) == 1, found


def test_the_demo_is_described_as_it_runs():
    help_text = " ".join(main.get_command(click.Context(main), "demo").get_help(
        click.Context(main)).split())  # fmt: skip
    assert "comments and accounts" in help_text and "Two embedded Redis servers" in help_text
    demo = " ".join(sections((DOCS / "commands.md").read_text(encoding="utf-8"))["`demo`"].split())
    assert "two embedded Redis servers" in demo and "an embedded Redis" not in demo
    assert "PASS" in demo and "FAIL" in demo


def test_no_doc_promises_what_the_code_does_not():
    for path in LINKED_FILES:
        text = " ".join(path.read_text(encoding="utf-8").split())
        assert "commit per batch" not in text, path  # chunks of 1,000 outcomes a call
        assert "guarded by `SET NX`" not in text, path  # HSETNX for ULID event_ids
        assert "with a one-line error" not in text, path  # run logs a traceback first
    # Not on PyPI: the README installs from the checkout.
    for path in LINKED_FILES:
        assert "pip install 'cdc-verify[faust]'" not in path.read_text(encoding="utf-8"), path


def test_testing_md_says_what_every_test_file_proves():
    tested = (DOCS / "testing.md").read_text(encoding="utf-8")
    files = [p for p in (ROOT / "tests").glob("*/test_*.py") if p.parent.name != "deploy"]
    assert [str(p.relative_to(ROOT)) for p in files if p.name not in tested] == []
    assert "| `tests/deploy/` |" in tested
