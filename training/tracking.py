"""MLflow: runs of model candidates, the ``tennis-prematch`` and ``tennis-inplay`` registry entries and
their aliases.

Consumers load ``models:/tennis-prematch@champion`` (``models:/tennis-inplay@champion``). Aliases are the
only pointers we use (``challenger`` = newest registered candidate, ``champion`` = what serves); never stages.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from xgboost import XGBClassifier

PREMATCH_MODEL = "tennis-prematch"
PREMATCH_EXPERIMENT = "tennis-prematch"
PREMATCH_DESCRIPTION = "Pre-match P(player A wins); serve models:/tennis-prematch@champion"
CHALLENGER, CHAMPION = "challenger", "champion"

INPLAY_MODEL = "tennis-inplay"
INPLAY_EXPERIMENT = "tennis-inplay"
INPLAY_DESCRIPTION = (
    "In-play P(player A wins the match) from the score, the pre-match probability and the "
    "serve statistics of the match; /predict_live serves models:/tennis-inplay@champion"
)

EVALUATION_EXPERIMENT = "tennis-evaluation"
"""Runs that judge models on the test seasons, apart from the candidate runs: ``test-evaluation`` (every candidate
against the bookmakers), ``walk-forward-evaluation``, ``tour-comparison-slams``; one metric scheme,
``<tour>_<rows>_<forecaster>_<metric>`` (``atp_tour_bet365_xgboost_log_loss``, ``wta_slams_market_pinnacle_brier``)."""

WTA_PREMATCH_MODEL = "tennis-prematch-wta"
WTA_PREMATCH_EXPERIMENT = "tennis-prematch-wta"
WTA_PREMATCH_DESCRIPTION = (
    "Pre-match P(player A wins) of a WTA match: the women's own candidates and the model of both tours, the one "
    "with the lower log-loss on the WTA validation rows; models:/tennis-prematch-wta@champion"
)

REGISTRY_DESCRIPTIONS = {
    PREMATCH_MODEL: PREMATCH_DESCRIPTION,
    INPLAY_MODEL: INPLAY_DESCRIPTION,
    WTA_PREMATCH_MODEL: WTA_PREMATCH_DESCRIPTION,
}
"""Description of each registered model, given when it is first created."""


@contextmanager
def _store_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive lock across processes on an embedded SQLite store (``<store>.lock`` beside it); nothing for
    other stores. Two pipeline steps in two processes may configure MLflow at once: on a fresh store both would
    create its schema (one fails: table exists), and both would create the same experiment."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        yield
        return
    lock = Path(tracking_uri[len(prefix) :].split("?", 1)[0] + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def configure(tracking_uri: str, artifact_root: str | Path | None = None, experiment: str = PREMATCH_EXPERIMENT) -> str:
    """Point MLflow at ``tracking_uri`` and make sure ``experiment`` exists; returns its id. A new experiment keeps
    its artifacts under ``artifact_root`` (a URI such as ``s3://bucket/prefix`` or ``file:///...``, or a local
    folder; ``Settings.mlflow_artifact_root``); an existing one keeps its own. Safe in processes starting at the
    same time (``_store_lock``)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(tracking_uri)
    with _store_lock(tracking_uri):
        client = MlflowClient()
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            location = artifact_root.as_uri() if isinstance(artifact_root, Path) else artifact_root
            exp_id = client.create_experiment(experiment, artifact_location=location)
        else:
            exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def frame_version(*frames: pd.DataFrame) -> str:
    """Content hash of data frames (values, column names and order): the data version of a run."""
    h = hashlib.sha256()
    for frame in frames:
        h.update(",".join(map(str, frame.columns)).encode())
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _requirements(*packages: str) -> list[str]:
    return [f"{p}=={package_version(p)}" for p in packages]


def log_model(model: Any, features: list[str], input_example: pd.DataFrame) -> str:
    """Log ``model`` in the active run (native XGBoost format when it is XGBoost); returns its URI."""
    metadata = {"features": list(features)}
    if isinstance(model, XGBClassifier):
        info = mlflow.xgboost.log_model(
            model,
            name="model",
            metadata=metadata,
            input_example=input_example,
            pip_requirements=_requirements("xgboost", "scikit-learn", "pandas", "numpy"),
        )
    else:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            metadata=metadata,
            input_example=input_example,
            serialization_format="cloudpickle",
            code_paths=None,
            pip_requirements=_requirements("scikit-learn", "pandas", "numpy", "cloudpickle"),
        )
    return info.model_uri


@dataclass(frozen=True)
class RegisteredModel:
    """One version of a registered model, with what is needed to use it."""

    name: str
    version: str
    run_id: str | None
    model: Any
    features: list[str]


def load_model(uri: str) -> tuple[Any, list[str]]:
    """The native model behind ``uri`` (no pyfunc wrapper) and the feature columns it expects."""
    info = mlflow.models.get_model_info(uri)
    features = list((info.metadata or {}).get("features", []))
    if "xgboost" in info.flavors:
        return mlflow.xgboost.load_model(uri), features
    return mlflow.sklearn.load_model(uri), features


def ensure_registered_model(name: str, description: str) -> None:
    """Create the registered model ``name`` with ``description`` if it does not exist yet."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description)


def register(
    model_uri: str, run_id: str, name: str = PREMATCH_MODEL, alias: str = CHALLENGER, description: str = ""
) -> str:
    """Register ``model_uri`` as a new version of ``name`` (created with its ``REGISTRY_DESCRIPTIONS``
    entry if it does not exist yet) and point ``alias`` at it. The version carries its run's validation metrics and
    data version as tags, so the registry compares versions without opening their runs."""
    ensure_registered_model(name, REGISTRY_DESCRIPTIONS.get(name, ""))
    client = MlflowClient()
    mv = client.create_model_version(name, model_uri, run_id=run_id, description=description)
    run = client.get_run(run_id)
    for key, value in run.data.metrics.items():
        if key.startswith("validation_"):
            client.set_model_version_tag(name, mv.version, key, f"{value:.6g}")
    for key in ("data_version", "model_family", "training_batch"):
        if key in run.data.tags:
            client.set_model_version_tag(name, mv.version, key, run.data.tags[key])
    client.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version)


def log_datasets(frames: dict[str, pd.DataFrame], name: str, data_version: str, target: str) -> None:
    """Each split the active run learned or was judged on, as an MLflow dataset input (schema, rows, digest), with
    its context (``training``, ``validation``): the runs table shows what each model saw."""
    import mlflow.data

    for context, frame in frames.items():
        dataset = mlflow.data.from_pandas(
            frame, targets=target if target in frame else None, name=f"{name}:{context}", digest=data_version[:16]
        )
        mlflow.log_input(dataset, context=context)


@dataclass(frozen=True)
class Challenger:
    """The version a candidate's registration points ``challenger`` at."""

    version: str
    reused: bool
    """True when the current challenger already was this model family on this data (nothing registered)."""
    data_version: str
    """The candidate run's ``data_version`` tag."""


def register_challenger(
    model_uri: str, run_id: str, model_family: str, description: str, name: str = PREMATCH_MODEL
) -> Challenger:
    """The one registration rule of every registered model: the candidate of run ``run_id`` becomes a new
    version of ``name`` with alias ``challenger`` -- unless the current challenger is the same model family
    (run tag ``model_family``) trained on the same data (run tag ``data_version``), which is kept as is."""
    data_version = run_tags(run_id).get("data_version", "")
    current = version_info(CHALLENGER, name)
    if (
        current
        and current.tags.get("data_version") == data_version
        and current.tags.get("model_family") == model_family
    ):
        return Challenger(current.version, True, data_version)
    version = register(model_uri, run_id, name=name, description=f"{model_family}: {description}")
    return Challenger(version, False, data_version)


def promote_to_champion(version: str, name: str = PREMATCH_MODEL) -> None:
    """Point ``champion`` of ``name`` at ``version`` (once the champion/challenger gate has passed)."""
    set_alias(version, CHAMPION, name)


def by_alias(alias: str, name: str = PREMATCH_MODEL) -> RegisteredModel | None:
    """The version ``alias`` points at, loaded; None when the alias is not set."""
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    model, features = load_model(f"models:/{name}@{alias}")
    return RegisteredModel(name, str(mv.version), mv.run_id, model, features)


def set_alias(version: str, alias: str, name: str = PREMATCH_MODEL) -> None:
    """Point ``alias`` of ``name`` at ``version``."""
    MlflowClient().set_registered_model_alias(name, alias, version)


def run_url(tracking_ui: str, experiment_id: str, run_id: str) -> str:
    """Link to a run in the MLflow UI."""
    return f"{tracking_ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@dataclass(frozen=True)
class VersionInfo:
    """A registered version and the tags of the run that produced it."""

    version: str
    run_id: str | None
    tags: dict[str, str]


def run_tags(run_id: str) -> dict[str, str]:
    """Tags of an MLflow run."""
    return dict(MlflowClient().get_run(run_id).data.tags)


def version_info(alias: str, name: str = PREMATCH_MODEL) -> VersionInfo | None:
    """The version ``alias`` points at and its run's tags; None when the alias is not set."""
    try:
        mv = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return VersionInfo(str(mv.version), mv.run_id, run_tags(mv.run_id) if mv.run_id else {})


def load_version(version: str, name: str = PREMATCH_MODEL) -> RegisteredModel:
    """One registered version, loaded."""
    mv = MlflowClient().get_model_version(name, version)
    model, features = load_model(f"models:/{name}/{version}")
    return RegisteredModel(name, str(version), mv.run_id, model, features)
