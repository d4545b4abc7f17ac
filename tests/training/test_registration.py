"""The one registration rule of ``tennis-prematch`` and ``tennis-inplay`` (``training.tracking``), on a real
MLflow registry (SQLite in a temporary folder): a candidate becomes a new challenger version unless the
current challenger is the same model family on the same data; the champion alias follows the promotion."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from training import tracking
from training.models import ProbabilityColumn


@pytest.fixture
def registry(tmp_path):
    tracking.configure(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", tracking.PREMATCH_EXPERIMENT)


def _candidate(family: str, data_version: str) -> tuple[str, str]:
    x = pd.DataFrame({"elo_prob": np.linspace(0.1, 0.9, 5)})
    model = ProbabilityColumn().fit(x, np.array([0, 0, 1, 1, 1]))
    with mlflow.start_run() as run:
        mlflow.set_tags({"model_family": family, "data_version": data_version})
        uri = tracking.log_model(model, ["elo_prob"], x.head(2))
    return uri, run.info.run_id


@pytest.mark.parametrize("name", [tracking.PREMATCH_MODEL, tracking.INPLAY_MODEL])
def test_same_family_on_same_data_reuses_the_challenger_else_registers(registry, name):
    first = tracking.register_challenger(*_candidate("elo", "d1"), "elo", "Elo probability", name)
    assert (first.version, first.reused, first.data_version) == ("1", False, "d1")
    again = tracking.register_challenger(*_candidate("elo", "d1"), "elo", "Elo probability", name)
    assert (again.version, again.reused) == ("1", True)
    other_data = tracking.register_challenger(*_candidate("elo", "d2"), "elo", "Elo probability", name)
    other_family = tracking.register_challenger(*_candidate("logistic", "d2"), "logistic", "all features", name)
    assert (other_data.version, other_data.reused) == ("2", False)
    assert (other_family.version, other_family.reused) == ("3", False)
    assert tracking.version_info(tracking.CHALLENGER, name).version == "3"
    assert tracking.version_info(tracking.CHAMPION, name) is None

    tracking.promote_to_champion(other_data.version, name)
    assert tracking.version_info(tracking.CHAMPION, name).version == "2"
    client = MlflowClient()
    assert client.get_registered_model(name).description == tracking.REGISTRY_DESCRIPTIONS[name]
    assert client.get_model_version(name, "3").description == "logistic: all features"
