"""The fault suite's figures: each test fills a dict (fixture ``figures``, tests/chaos/conftest.py); they
are printed at the end of the run and written as JSON to ``COURTSIDE_CHAOS_REPORT`` when set. A pytest
plugin (tests/conftest.py loads it) so that it also runs in the pytest-xdist controller, which writes the
summary: a worker's figures reach it with the test's report."""

from __future__ import annotations

import json
import os
from pathlib import Path

FIGURES: dict[str, dict[str, object]] = {}
FIGURES_PROPERTY = "chaos_figures"
"""The key of a test report's user property that carries its figures."""


def pytest_runtest_logreport(report):
    for key, value in getattr(report, "user_properties", ()):
        if key == FIGURES_PROPERTY:
            FIGURES.setdefault(value["test"], value["figures"])


SECURITY_TESTS = {
    "tests/ops/test_exposure.py": "every listener on 127.0.0.1 by default; exposure refused until protected",
    "tests/ops/test_mlflow_auth.py": "MLflow writes refused without credentials (401) and for the reader (403)",
    "tests/ops/test_gatekeeper.py": "Dagster launchRun refused without credentials behind the proxy",
    "tests/api/test_gateway_access.py": "gateway: foreign Origin refused, ledger/alert rooms need a token",
    "tests/api/test_hardening.py": "spoofed X-Forwarded-For ignored, oversized bodies 413, bad values 422, JSON errors",
    "tests/serving/test_service_http.py": "prediction service: NaN/huge/coerced values 422, 413, JSON errors, loopback",
}
"""The open-door checks ``make chaos`` runs with the fault suite (their results are listed with the figures)."""


def _security_results(tr) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = {}
    for outcome, index in (("passed", 0), ("failed", 1), ("error", 1)):
        for report in tr.stats.get(outcome, []):
            path = getattr(report, "nodeid", "").split("::")[0]
            if path in SECURITY_TESTS and getattr(report, "when", "call") in ("call", "setup"):
                if outcome == "passed" and report.when != "call":
                    continue
                out.setdefault(path, [0, 0])[index] += 1
    return {p: (v[0], v[1]) for p, v in out.items()}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    if not FIGURES:  # no fault-suite test ran
        return
    security = _security_results(tr)
    if security:
        FIGURES["security checks (tests passed / failed)"] = {
            f"{SECURITY_TESTS[p]}": f"{ok} / {bad}" for p, (ok, bad) in sorted(security.items())
        }
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
