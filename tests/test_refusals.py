"""Every refusal of tests/refusals.py gives a WeightsError naming the file and the problem, and docs/report.md's
table of refusals is the one those cases generate."""

from __future__ import annotations

import pytest
from refusals import CASES, docs_section, table


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.reader}: {case.problem}")
def test_each_refusal_names_the_problem(case, tmp_path):
    message = case.message(tmp_path)  # raises unless a WeightsError matching the case's pattern comes
    assert message and len(message) < 600


def test_the_docs_table_is_generated_from_the_cases():
    assert docs_section() == table(), "the refusals changed: run `python tests/refusals.py` to rewrite docs/report.md"
