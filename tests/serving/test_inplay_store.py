"""The in-play model store of the prediction service, on a real MLflow registry (SQLite in a temporary
folder): nothing served while no champion exists (the service then answers with the Markov chain), the
champion loaded and compiled, a new champion swapped in on reload, the loaded one kept when a reload
fails."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from features.inplay_state import FEATURE_INDEX, INPLAY_FEATURES, inplay_features, sigmoid
from features.scoring import MatchFormat, Score
from serving.model_store import InplayStore
from training import tracking
from training.inplay_models import InplayEstimator

pytestmark = pytest.mark.slow  # MLflow registry round trips (make test-fast leaves them out)


def _rows() -> np.ndarray:
    fmt = MatchFormat(3)
    states = [Score.start(fmt, 0), Score.at(fmt, [(6, 4)], (2, 3), (3, 1), 1), Score.at(fmt, [], (6, 6), (4, 5), 0)]
    return inplay_features([0.6, 0.6, 0.35], states, [0, 30, 20], [0, 45, 33], [0, 28, 22], [0, 40, 31], 300.0)


def _register(model: InplayEstimator, alias: str = tracking.CHAMPION) -> str:
    example = pd.DataFrame(_rows(), columns=list(INPLAY_FEATURES))
    with mlflow.start_run() as run:
        uri = tracking.log_model(model, list(INPLAY_FEATURES), example)
    tracking.ensure_registered_model(tracking.INPLAY_MODEL, tracking.INPLAY_DESCRIPTION)
    version = tracking.register(uri, run.info.run_id, name=tracking.INPLAY_MODEL, alias=tracking.CHALLENGER)
    tracking.set_alias(version, alias, tracking.INPLAY_MODEL)
    return version


@pytest.fixture
def registry(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.configure(uri, tmp_path / "artifacts", tracking.INPLAY_EXPERIMENT)
    return uri


def test_no_champion_means_nothing_loaded_and_a_clear_reason(registry):
    store = InplayStore(registry, poll_s=3600)
    assert not store.wait_until_loaded(timeout_s=0.0)
    assert store.current is None and store.attempted.is_set()
    assert "tennis-inplay@champion is not set" in store.last_error


def test_champion_loaded_compiled_and_swapped_on_reload(registry):
    first = _register(InplayEstimator("markov", 300.0).fit())
    store = InplayStore(registry, poll_s=3600)
    assert store.wait_until_loaded(timeout_s=0.0)
    x = _rows()
    cur = store.current
    assert (cur.model_name, cur.version, cur.family, cur.serve_prior_strength) == (
        tracking.INPLAY_MODEL,
        first,
        "markov",
        300.0,
    )
    np.testing.assert_allclose(cur.predict(x), sigmoid(x[:, FEATURE_INDEX["markov_logit"]]))
    assert cur.predict(x[:1])[0] == pytest.approx(0.6, abs=1e-12)  # before the first point: the pre-match p
    assert not store.load()  # same version: nothing to do

    second = _register(InplayEstimator("markov_updated", 300.0).fit())
    assert store.load() and store.current.version == second and store.current.family == "markov_updated"
    np.testing.assert_allclose(store.current.predict(x), sigmoid(x[:, FEATURE_INDEX["markov_updated_logit"]]))
    assert store.reloads == 2


def test_a_failed_reload_keeps_serving_the_loaded_champion(registry, tmp_path):
    version = _register(InplayEstimator("markov_updated", 300.0).fit())
    store = InplayStore(registry, poll_s=3600)
    store.load()
    store.tracking_uri = f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}"  # the registry becomes unreachable
    with pytest.raises(Exception):  # noqa: B017 - any failure: the poller logs it and keeps the model
        store.load()
    assert store.current is not None and store.current.version == version
