"""The fault suite (issue 9): hostile feeds, cut connections, killed engines, fuzzed HTTP services,
open doors. Bounded in CI; ``make chaos`` (``COURTSIDE_CHAOS_FULL=1``) runs the full sizes. Every
test records its figures (tests/chaos/figures.py); they are printed at the end of the run (and written
as JSON to ``COURTSIDE_CHAOS_REPORT`` when set)."""

from __future__ import annotations

import pytest

from tests.chaos.figures import FIGURES, FIGURES_PROPERTY


@pytest.fixture
def figures(request):
    """A dict the test fills with its figures (shown at the end of the run)."""
    entry: dict[str, object] = {}
    FIGURES[request.node.name] = entry
    yield entry
    # the test's report carries them too: under pytest-xdist the summary is written by the controller
    request.node.user_properties.append((FIGURES_PROPERTY, {"test": request.node.name, "figures": entry}))
