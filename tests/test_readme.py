"""The README's first two commands are the ones the CI runs and a user can run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later

ROOT = Path(__file__).parent.parent


def readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert block is not None, "the README starts with a bash block of two commands"
    return block[1].strip().splitlines()


def test_the_ci_runs_the_readme_test_command_verbatim():
    user, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci and tests.endswith("&& pytest")
    assert user.endswith('floatfmt explain "0 1011 011" e4m3')


def test_the_user_command_installs_no_test_stack():
    user, _ = readme_commands()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    chosen = re.search(r'"\.\[([a-z,]+)\]"', user)
    assert chosen is not None
    installed = [requirement for extra in chosen[1].split(",") for requirement in extras[extra]]
    assert installed and not any(name in " ".join(installed) for name in ("torch", "pytest", "pandas", "dask"))
