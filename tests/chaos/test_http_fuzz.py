"""Fault suite, HTTP (issue 9): schemathesis generates requests from the OpenAPI documents of the two
HTTP services, valid and invalid ones, and checks every answer with all of its checks (no server
error, status codes, content types, headers and bodies as documented, invalid data rejected, valid
data accepted, auth enforced, ...).

Both services are real processes: ``bentoml serve`` of the prediction service answering from a small
champion (a logistic regression fitted here on two real seasons, registered in a temporary MLflow,
with its player snapshot) and ``python -m serving.api`` over an event log the real engine wrote while
trading two real Wimbledon 2012 matches against that service (one settled). Operator endpoints are
called with the token. ``422`` counts as an accepted answer to schema-valid data: a schema cannot say
which players exist or which scores are possible.

Bounded for CI (``MAX_EXAMPLES`` per operation, plus schemathesis's coverage cases);
``COURTSIDE_CHAOS_FULL=1`` (``make chaos``) raises it to ``FULL_EXAMPLES``. The figures of each
service (operations, requests, 5xx, schema violations) are printed at the end and kept in
``.courtside/artifacts/http_fuzz.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import schemathesis

from betting.policy import TradingPolicy
from tests.api.services import TOKEN, api_server
from tests.services import ROOT
from tests.services import prediction_service as serve

FULL = os.environ.get("COURTSIDE_CHAOS_FULL") == "1"
MAX_EXAMPLES = 25
FULL_EXAMPLES = 500
ARTIFACT = ROOT / ".courtside" / "artifacts" / "http_fuzz.json"
SEASONS = (
    "atp/atp_matches_2020.csv.gz",
    "atp/atp_matches_2021.csv.gz",
    "atp/atp_matches_qual_chall_2021.csv.gz",
    "atp/atp_players.csv.gz",
    "wta/wta_matches_2020.csv.gz",
    "wta/wta_matches_2021.csv.gz",
    "wta/wta_players.csv.gz",
)
ACCEPTED = ["2xx", "401", "403", "404", "409", "422", "429"]
"""Answers to schema-valid data that are not a fault (422: players, dates, scores the schema cannot judge)."""


@dataclass
class Figures:
    """What one service's fuzzing did."""

    operations: set[str] = field(default_factory=set)
    requests: int = 0
    server_errors: int = 0
    violations: int = 0
    statuses: dict[int | str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "operations": len(self.operations),
            "requests": self.requests,
            "5xx": self.server_errors,
            "schema_violations": self.violations,
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "seconds": round(self.seconds, 1),
            "max_examples": _examples(),
            "problems": self.problems[:20],
        }


FIGURES: dict[str, Figures] = {}


def _examples() -> int:
    return FULL_EXAMPLES if FULL else MAX_EXAMPLES


def _config(headers: dict[str, str] | None = None) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": 20261206,  # reproducible generation (COURTSIDE_CHAOS_FULL widens it)
            "cache": {"enabled": False},  # no .schemathesis/ folder, no memory between runs
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "headers": headers or {},
            "request-timeout": 30,
            "generation": {"max-examples": _examples(), "mode": "all"},
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        }
    )


def fuzz(name: str, schema) -> Figures:
    """Every phase of schemathesis's engine (examples, coverage, fuzzing, stateful) over ``schema``."""
    from schemathesis.engine import Status, events

    figures = FIGURES[name] = Figures()
    started = time.monotonic()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            figures.operations.add(recorder.label)
            for interaction in recorder.interactions.values():
                figures.requests += 1
                status = interaction.response.status_code if interaction.response is not None else "no answer"
                figures.statuses[status] = figures.statuses.get(status, 0) + 1
                if isinstance(status, int) and status >= 500:
                    figures.server_errors += 1
            for checks in recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE:
                        if check.name != "not_a_server_error":
                            figures.violations += 1
                        failure = check.failure_info.failure if check.failure_info else None
                        what = f"{failure.title}: {failure.message}" if failure else ""
                        figures.problems.append(f"{recorder.label}: {check.name}: {what}"[:600])
        elif isinstance(event, events.NonFatalError):
            figures.problems.append(f"error in {event.label}: {event.info.title}: {event.info.message}"[:600])
        elif isinstance(event, events.FatalError):
            figures.problems.append(f"fatal: {type(event.exception).__name__}: {event.exception}"[:600])
    figures.seconds = time.monotonic() - started
    return figures


def _record(request, figures: Figures) -> None:
    """Also into the fault suite's table of figures (the ``figures`` fixture of tests/chaos), where there is one."""
    try:
        entry = request.getfixturevalue("figures")
    except pytest.FixtureLookupError:
        return
    entry.update({k: v for k, v in figures.summary().items() if k != "problems"})


def _assert_clean(figures: Figures, operations: int) -> None:
    assert figures.server_errors == 0 and figures.violations == 0 and not figures.problems, "\n".join(figures.problems)
    assert len(figures.operations) >= operations and figures.requests > operations * 10, figures.summary()


@pytest.fixture(scope="module", autouse=True)
def report(request) -> Iterator[None]:
    yield
    if not FIGURES:
        return
    capture = request.config.pluginmanager.getplugin("capturemanager")
    out = {name: f.summary() for name, f in FIGURES.items()}
    for name, s in out.items():
        line = (
            f"http fuzz {name}: {s['operations']} operations, {s['requests']} requests, {s['5xx']} 5xx, "
            f"{s['schema_violations']} schema violations, {s['seconds']} s (max_examples {s['max_examples']}); "
            f"statuses {s['statuses']}"
        )
        with capture.global_and_fixture_disabled():  # shown even when the tests pass
            print(f"\n{line}", flush=True)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(out, indent=2))


# --- a prediction service with a champion ----------------------------------------------------------
def _register_champion(home: Path, tracking_uri: str) -> None:
    """For each tour, fit the logistic candidate on two real seasons, register it as the tour's champion
    (tennis-prematch, tennis-prematch-wta) and write the player snapshot and the feature table where the service
    reads them."""
    import mlflow
    import pandas as pd

    from features.matches import WTA_LEVEL_FAMILY, clean_matches, clean_players
    from features.prematch import FEATURES, build_prematch_features
    from features.snapshot import PlayerSnapshot
    from feeds.historical import ingest
    from feeds.sources import LocalDataSource
    from tests.real_data import data_dir
    from training import tracking
    from training.models import CANDIDATES, fit_candidate

    source = Path(tempfile.mkdtemp(prefix="courtside-fuzz-data-"))
    try:  # a data folder holding only two seasons of each tour (links to the shared data, nothing copied)
        for name in SEASONS:
            (source / name).parent.mkdir(exist_ok=True)
            (source / name).symlink_to(data_dir() / name)
        data = LocalDataSource(source)
        tours = {
            "ATP": (
                clean_matches(ingest(data, "atp_matches").frame, ingest(data, "atp_matches_qual_chall").frame)[0],
                clean_players(ingest(data, "atp_players").frame),
                "",
                tracking.PREMATCH_MODEL,
            ),
            "WTA": (
                clean_matches(ingest(data, "wta_matches").frame, None, "WTA", WTA_LEVEL_FAMILY)[0],
                clean_players(ingest(data, "wta_players").frame),
                "wta_",
                tracking.WTA_PREMATCH_MODEL,
            ),
        }
    finally:
        shutil.rmtree(source, ignore_errors=True)
    warehouse = home / "warehouse"
    warehouse.mkdir(parents=True, exist_ok=True)
    tracking.configure(tracking_uri, home / "mlflow" / "artifacts", tracking.PREMATCH_EXPERIMENT)
    for matches, players, prefix, model_name in tours.values():  # both tours' champions: /predict serves both
        table, state = build_prematch_features(matches, players, matches["is_tour_main"])
        cut = int(len(table) * 0.8)
        model = fit_candidate(next(c for c in CANDIDATES if c.name == "logistic"), table.iloc[:cut], table.iloc[cut:])
        table.to_parquet(warehouse / f"{prefix}prematch_features.parquet")
        with (warehouse / f"{prefix}player_snapshot.pickle").open("wb") as fh:
            pickle.dump(PlayerSnapshot.build(state, matches, players), fh)
        with mlflow.start_run() as run:
            uri = tracking.log_model(model, list(FEATURES), table[list(FEATURES)].head(3))
        version = tracking.register(uri, run.info.run_id, name=model_name)
        tracking.set_alias(version, tracking.CHAMPION, model_name)
    assert pd.notna(table["a_won"]).all()


@pytest.fixture(scope="module")
def prediction_url(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("fuzz-prediction-home")
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    _register_champion(home, tracking_uri)
    with serve(home, {"MLFLOW_TRACKING_URI": tracking_uri}, ready=True) as url:
        yield url


# --- a live API over a real engine's log ----------------------------------------------------------------
@pytest.fixture(scope="module")
def live_api_url(prediction_url, tmp_path_factory) -> Iterator[str]:
    from feeds.live.replay import build_feed
    from serving import control
    from storage.db import make_engine, migrate
    from tests.api.conftest import trade
    from tests.engine.fixtures import envelopes_of, slam_rows

    folder = tmp_path_factory.mktemp("fuzz-live-api")
    url = f"sqlite:///{folder / 'live.db'}"
    migrate(url)
    schedule, _ = build_feed(slam_rows("2012-wimbledon", 2), stagger_s=1800.0)
    envelopes = envelopes_of(schedule)
    end = next(i for i, e in enumerate(envelopes) if e.channel == "match" and e.data.kind == "match_end")
    asyncio.run(trade(url, prediction_url, envelopes[: end + 30]))
    db = make_engine(url)
    control.settle_finished(db, TradingPolicy())
    db.dispose()
    with api_server(
        url, folder, "--rate-limit", "1000000/60", env={"COURTSIDE_READ_TOKEN": "fuzz-read-token-8d2f4a61c0b9"}
    ) as api:
        yield api.url


def test_the_prediction_service_answers_every_request_as_documented(prediction_url, request):
    schema = schemathesis.openapi.from_url(f"{prediction_url}/openapi.json", config=_config())
    figures = fuzz("prediction service", schema)
    _record(request, figures)
    _assert_clean(figures, operations=3)  # /health, /predict, /predict_live


def test_the_live_api_answers_every_request_as_documented(live_api_url, request):
    schema = schemathesis.openapi.from_url(
        f"{live_api_url}/openapi.json", config=_config({"Authorization": f"Bearer {TOKEN}"})
    )
    figures = fuzz("live API", schema)
    _record(request, figures)
    _assert_clean(figures, operations=16)
