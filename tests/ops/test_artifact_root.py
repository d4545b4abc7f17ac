"""MLflow's artifact root as object storage (issue 14): ``COURTSIDE_ARTIFACT_ROOT=s3://bucket/prefix`` (the store's
endpoint in ``MLFLOW_S3_ENDPOINT_URL`` when it is not AWS) puts the models and plots of the experiments created from
then on in the bucket; without it they stay under ``$COURTSIDE_HOME/mlflow/artifacts``, as before.

The bucket is a real S3-protocol server on 127.0.0.1: moto's ``ThreadedMotoServer``, spoken to through boto3 exactly
as MLflow does (no mock inside the process). The credentials are dummies set here; nothing reads ``~/.aws``.

- The pipeline's path: the experiment the Dagster resource creates has the bucket as its location; a model logged and
  registered with ``training.tracking`` lands in the bucket, and ``models:/<name>@champion`` loads it back.
- The MLflow server ``courtside up`` starts, with the whole production profile (Postgres and the bucket): an
  experiment created through it gets a location in the bucket, a file logged in it lands there and the server reads
  it back (what its UI shows), and the champion the pipeline registered loads through the server, as the prediction
  service loads it when the services are exposed.
"""

from __future__ import annotations

import os
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import boto3
import mlflow
import numpy as np
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer
from xgboost import XGBClassifier

from courtside import cli
from courtside.exposure import Ports, child_environment
from courtside.settings import Settings, artifact_root_uri
from courtside.supervisor import ProcessLauncher
from tests.services import ROOT, free_port
from training import tracking

AWS_DUMMY = {
    "AWS_ACCESS_KEY_ID": "courtside-test",
    "AWS_SECRET_ACCESS_KEY": "courtside-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance metadata service for credentials
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",  # nothing leaves 127.0.0.1
}
"""What boto3 sees in these tests: dummy credentials (moto accepts any) and no configured endpoint but ours; and no
MLflow usage report."""

CLEARED = (
    "COURTSIDE_ARTIFACT_ROOT",
    "COURTSIDE_DATABASE_URL",
    "COURTSIDE_DATA_DIR",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_S3_IGNORE_TLS",
    "MLFLOW_S3_UPLOAD_EXTRA_ARGS",
    "MLFLOW_S3_EXPECTED_BUCKET_OWNER",
    "MLFLOW_DEFAULT_ARTIFACT_ROOT",
    "DAGSTER_HOME",
    "DAGSTER_PG_URL",
    "COURTSIDE_MAX_CONCURRENT_RUNS",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)
"""Variables of the caller that would change what these tests see (a real profile, real AWS settings)."""

MODEL = "tennis-prematch-s3-probe"
FEATURES = ["elo_diff", "rank_diff", "age_diff"]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """An S3-protocol server on 127.0.0.1 for this module."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def env(tmp_path) -> Iterator[MutableMapping[str, str]]:
    """A clean environment (restored afterwards, with MLflow's tracking URI): ``COURTSIDE_HOME`` in ``tmp_path``,
    the dummy AWS credentials, no AWS configuration file."""
    saved = dict(os.environ)
    for var in CLEARED:
        os.environ.pop(var, None)
    os.environ.update(AWS_DUMMY)
    os.environ["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    os.environ["COURTSIDE_HOME"] = str(tmp_path / "home")
    try:
        yield os.environ
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def bucket(env, moto_endpoint) -> str:
    """A new empty bucket; MLflow reaches it through ``MLFLOW_S3_ENDPOINT_URL``."""
    env["MLFLOW_S3_ENDPOINT_URL"] = moto_endpoint
    name = f"courtside-{uuid.uuid4().hex[:12]}"
    s3().create_bucket(Bucket=name)
    return name


def s3():
    """A boto3 client of the moto server (as MLflow builds its own: the endpoint from MLFLOW_S3_ENDPOINT_URL)."""
    return boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])


def keys(bucket: str) -> list[str]:
    pages = s3().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def tiny_model() -> tuple[XGBClassifier, pd.DataFrame]:
    rng = np.random.default_rng(14)
    x = pd.DataFrame(rng.normal(size=(60, len(FEATURES))), columns=FEATURES)
    y = (x["elo_diff"] + 0.3 * rng.normal(size=len(x)) > 0).astype(int)
    return XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(x, y), x


def log_and_register_champion(experiment_id: str) -> tuple[XGBClassifier, pd.DataFrame, str]:
    """What a candidate asset does, on a tiny model: a run in the experiment, the model logged with
    ``training.tracking.log_model``, registered and made champion. Returns the model, its rows and the run's id."""
    model, x = tiny_model()
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("validation_log_loss", 0.6)
        uri = tracking.log_model(model, FEATURES, x.head(3))
    version = tracking.register(uri, run.info.run_id, name=MODEL, alias=tracking.CHALLENGER)
    tracking.promote_to_champion(version, MODEL)
    return model, x, run.info.run_id


def assert_champion_loads(model: XGBClassifier, x: pd.DataFrame) -> None:
    loaded = tracking.by_alias(tracking.CHAMPION, MODEL)
    assert loaded is not None and loaded.features == FEATURES
    np.testing.assert_allclose(loaded.model.predict_proba(x)[:, 1], model.predict_proba(x)[:, 1], rtol=1e-6)


def pipeline_mlflow(settings: Settings):
    """The MLflow resource the pipeline's assets get (orchestration/defs/shared/resources.py)."""
    from orchestration.defs.shared.resources import resources_from_settings

    return resources_from_settings(settings)["mlflow"]


def mlflow_server_spec(settings: Settings, ports: Ports):
    spec = next(s for s in cli.control_plane_specs(settings, ports) if s.name == "mlflow")
    return spec, spec.command[spec.command.index("--default-artifact-root") + 1]


def test_the_variable_takes_a_uri_or_a_local_path(tmp_path):
    assert artifact_root_uri("") == ""
    assert artifact_root_uri(" s3://bucket/courtside/mlflow ") == "s3://bucket/courtside/mlflow"
    assert artifact_root_uri("file:///srv/artifacts") == "file:///srv/artifacts"
    assert artifact_root_uri(str(tmp_path / "a")) == (tmp_path / "a").as_uri()
    home = tmp_path / "home"
    default = Settings.from_env({"COURTSIDE_HOME": str(home)})
    assert default.artifact_root == ""
    assert default.mlflow_artifact_root == (home.resolve() / "mlflow" / "artifacts").as_uri()
    s3_root = Settings.from_env({"COURTSIDE_HOME": str(home), "COURTSIDE_ARTIFACT_ROOT": "s3://b/p"})
    assert s3_root.mlflow_artifact_root == "s3://b/p"
    assert s3_root.mlflow_artifacts_dir == default.mlflow_artifacts_dir  # the local folder itself is unchanged


@pytest.mark.slow  # MLflow round trips (make test-fast leaves them out)
def test_without_the_variable_the_artifacts_stay_on_local_disk(env, tmp_path):
    settings = cli.prepare_environment(Settings.from_env())
    local = tmp_path / "home" / "mlflow" / "artifacts"
    _, root = mlflow_server_spec(settings, Ports(dagster=free_port(), mlflow=free_port()))
    assert root == settings.mlflow_artifact_root == local.resolve().as_uri()  # as before the variable existed

    resource = pipeline_mlflow(settings)
    experiment_id = resource.configure("s3-probe-local")
    assert mlflow.get_experiment(experiment_id).artifact_location == local.resolve().as_uri()
    model, x, _ = log_and_register_champion(experiment_id)
    assert list(local.rglob("MLmodel")), "the model is not under $COURTSIDE_HOME/mlflow/artifacts"
    assert_champion_loads(model, x)


@pytest.mark.slow  # MLflow round trips (make test-fast leaves them out)
def test_with_an_s3_root_the_pipeline_logs_and_loads_its_models_in_the_bucket(env, bucket, tmp_path):
    env["COURTSIDE_ARTIFACT_ROOT"] = f"s3://{bucket}/courtside/mlflow"
    settings = cli.prepare_environment(Settings.from_env())
    assert settings.mlflow_artifact_root == f"s3://{bucket}/courtside/mlflow"
    _, root = mlflow_server_spec(settings, Ports(dagster=free_port(), mlflow=free_port()))
    assert root == f"s3://{bucket}/courtside/mlflow"

    resource = pipeline_mlflow(settings)
    experiment_id = resource.configure("s3-probe-bucket")
    assert mlflow.get_experiment(experiment_id).artifact_location == f"s3://{bucket}/courtside/mlflow"
    model, x, _ = log_and_register_champion(experiment_id)

    stored = keys(bucket)
    assert all(k.startswith("courtside/mlflow/") for k in stored), stored
    model_files = [k for k in stored if k.endswith("/MLmodel")]
    assert model_files, stored
    names = {k.rsplit("/", 1)[1] for k in stored if k.startswith(model_files[0].rsplit("/", 1)[0] + "/")}
    assert {"MLmodel", "model.ubj", "input_example.json"} <= names, names  # the native XGBoost file and its example
    assert not any((tmp_path / "home" / "mlflow" / "artifacts").rglob("*")), "something was written on local disk"
    assert_champion_loads(model, x)
    s3().delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stored]})
    with pytest.raises(Exception):  # noqa: B017 - whatever MLflow raises: the bucket was the only copy
        tracking.by_alias(tracking.CHAMPION, MODEL)


@pytest.mark.postgres
@pytest.mark.slow
def test_the_mlflow_server_courtside_up_starts_keeps_new_artifacts_in_the_bucket(env, bucket, postgres_database_url):
    """The whole production profile: the application database, Dagster and MLflow in Postgres, MLflow's artifacts
    in the bucket."""
    env["COURTSIDE_DATABASE_URL"] = postgres_database_url
    env["COURTSIDE_ARTIFACT_ROOT"] = f"s3://{bucket}/mlflow"
    settings = cli.prepare_environment(Settings.from_env())
    ports = Ports(dagster=free_port(), mlflow=free_port())
    spec, root = mlflow_server_spec(settings, ports)
    assert root == f"s3://{bucket}/mlflow"
    assert spec.command[spec.command.index("--backend-store-uri") + 1] == settings.mlflow_tracking_uri

    # the pipeline writes through the SQL store, straight to the bucket (the store's schema made before the server
    # starts, which then only checks it; the pipeline logs while the server boots)
    experiment_id = pipeline_mlflow(settings).configure("s3-probe-pipeline")
    launcher = ProcessLauncher(settings.home / "logs", cwd=ROOT, base_env=child_environment())
    proc = launcher.start(spec)
    url = f"http://127.0.0.1:{ports.mlflow}"
    try:
        model, x, _ = log_and_register_champion(experiment_id)
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (settings.home / "logs" / "mlflow.log").read_text()
                    raise RuntimeError(f"mlflow server did not start:\n{log[-3000:]}") from None
                time.sleep(0.3)

        mlflow.set_tracking_uri(url)  # a client of the server, as the exposed prediction service is
        assert_champion_loads(model, x)  # the registry through the server, the files from the bucket

        client = mlflow.MlflowClient()
        created = client.create_experiment("s3-probe-through-the-server")  # no location: the server's root
        location = client.get_experiment(created).artifact_location
        assert location == f"s3://{bucket}/mlflow/{created}", location
        with mlflow.start_run(experiment_id=created) as run:
            mlflow.log_text("served from the bucket", "notes/probe.txt")
        key = f"mlflow/{created}/{run.info.run_id}/artifacts/notes/probe.txt"
        assert key in keys(bucket), keys(bucket)
        query = urllib.parse.urlencode({"path": "notes/probe.txt", "run_uuid": run.info.run_id})
        with urllib.request.urlopen(f"{url}/get-artifact?{query}", timeout=30) as resp:  # the UI's download
            assert resp.read() == b"served from the bucket"
    finally:
        launcher.terminate(proc)
        launcher.reap(proc, 20)
    assert not any(Path(settings.mlflow_artifacts_dir).rglob("*"))
