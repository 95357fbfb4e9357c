"""CI runs the README's test command as it is, so the two cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("Set up and run the tests:", 1)[1]
    match = re.search(r"```bash\n(.+?)\n```", section, re.DOTALL)
    assert match, "the README's test command is a bash block after 'Set up and run the tests:'"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command_in_parallel_workers():
    command = _readme_test_command()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert command in ci_lines
    assert " -n auto" in command  # pytest-xdist: one worker per core (tests/conftest.py caps them)
