"""Print pip requirements that pin each of the project's dependencies to the oldest release its pin admits.

Run by .ci/run for the second test run: the core dependencies, the ``fast`` extra and the test tools the codec's
tests need, each ``name>=X`` as ``name==X``, so that the oldest numpy, ml_dtypes and numba the project claims to
support are the ones tested.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

EXTRAS = ("fast",)
TEST_TOOLS = ("pytest", "hypothesis")


def oldest(requirement: str) -> str:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][^,;\s]*)\s*", requirement.split("#")[0])
    if match is None:
        raise SystemExit(f"{requirement!r} has no lower bound of the form name>=version to pin")
    return f"{match[1]}=={match[2]}"


def main() -> None:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = list(project["dependencies"]) + [r for extra in EXTRAS for r in extras[extra]]
    wanted += [r for r in extras["test"] if re.match(r"\s*(" + "|".join(TEST_TOOLS) + r")\b", r)]
    sys.stdout.write("".join(oldest(r) + "\n" for r in wanted))


if __name__ == "__main__":
    main()
