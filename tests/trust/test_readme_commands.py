"""Every ``dlbench`` command line in the README's shell blocks parses as written (issue 22: the
README's examples must run; a renamed or removed flag fails here, not in a user's terminal)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dlbench.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def _command_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```(?:bash|sh|console|shell)\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")  # continuation lines
        lines += [ln.strip() for ln in joined.splitlines() if ln.strip().startswith("dlbench ")]
    return lines


LINES = _command_lines()


def test_the_readme_has_command_examples():
    assert len(LINES) >= 20


def _parses(line: str) -> bool:
    # "[--out DIR]" in a synopsis line: the optional part must parse too
    args = shlex.split(line.replace("[", " ").replace("]", " "), comments=True)[1:]
    try:
        build_parser().parse_args(args)
    except SystemExit:  # argparse's error exit
        return False
    return True


def test_a_stale_flag_is_caught(capsys):
    assert _parses("dlbench compare a.json b.json [--threshold 5%]  # a comment")
    assert not _parses("dlbench run --dataset-roots ~/data")  # a renamed flag
    assert not _parses("dlbench lists models")


@pytest.mark.parametrize("line", LINES)
def test_readme_command_parses(line):
    assert _parses(line), f"README line does not parse: {line}"
