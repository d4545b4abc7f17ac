"""The fault suite (issue 9): hostile feeds, cut connections, killed engines, fuzzed HTTP services,
open doors. Bounded in CI; ``make chaos`` (``COURTSIDE_CHAOS_FULL=1``) runs the full sizes. Every
test records its figures here; they are printed at the end of the run (and written as JSON to
``COURTSIDE_CHAOS_REPORT`` when set)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.services import prediction_service as serve

FIGURES: dict[str, dict[str, object]] = {}


@pytest.fixture
def figures(request):
    """A dict the test fills with its figures (shown at the end of the run)."""
    entry: dict[str, object] = {}
    FIGURES[request.node.name] = entry
    return entry


@pytest.fixture(scope="session")
def prediction_service(tmp_path_factory):
    """A real ``bentoml serve`` of the prediction service (no champion needed: the engine gives the prior)."""
    with serve(tmp_path_factory.mktemp("chaos-service-home")) as url:
        yield url


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not FIGURES:
        return
    tr = terminalreporter
    tr.section("fault suite figures")
    for test, entry in FIGURES.items():
        tr.write_line(test)
        for key, value in entry.items():
            tr.write_line(f"    {key:<48} {value}")
    target = os.environ.get("COURTSIDE_CHAOS_REPORT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(FIGURES, indent=2, default=str))
        tr.write_line(f"(written to {target})")
