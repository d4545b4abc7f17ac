"""MLflow exposed as ``courtside up`` runs it: the real ``mlflow server --app-name basic-auth`` started from the
command and environment ``courtside up`` builds (on another loopback address), the read-only user set up as
``courtside up`` does. Writes to the registry (delete ``tennis-prematch``, move its ``champion`` alias, create an
experiment) are refused without credentials (401) and to the reader (403); the reader loads the champion as
the prediction service does; the administrator may write."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from courtside import cli
from courtside.exposure import Ports, child_environment, ensure_mlflow_reader, reader_env
from courtside.settings import Settings
from courtside.supervisor import ProcessLauncher
from tests.api.services import request
from tests.services import ROOT, free_port

ADMIN_PW, READER_PW = "admin-password-1f9e", "reader-password-77c2"
HOST = "127.0.0.2"
REGISTER = """
import mlflow, numpy as np
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
mlflow.set_experiment("tennis-prematch")
with mlflow.start_run() as run:
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    info = mlflow.sklearn.log_model(model, name="model", metadata={"features": ["elo_diff"]})
client = MlflowClient()
client.create_registered_model("tennis-prematch")
version = client.create_model_version("tennis-prematch", info.model_uri, run_id=run.info.run_id)
client.set_registered_model_alias("tennis-prematch", "champion", version.version)
"""
LOAD_CHAMPION = """
import json
from training import tracking
info = tracking.version_info("champion")
model, features = tracking.load_model(f"models:/tennis-prematch/{info.version}")
print(json.dumps({"version": info.version, "features": features, "p": float(model.predict_proba([[2.5]])[0, 1])}))
"""


@dataclass
class Server:
    url: str
    settings: Settings
    log: Path


def basic(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("mlflow-auth")
    settings = Settings.from_env({"COURTSIDE_HOME": str(home), "COURTSIDE_BIND_HOST": HOST, "COURTSIDE_PROTECT": "1",
                                  "COURTSIDE_MLFLOW_ADMIN_PASSWORD": ADMIN_PW,
                                  "COURTSIDE_MLFLOW_READER_PASSWORD": READER_PW,
                                  "COURTSIDE_ALLOWED_HOSTS": "courtside.team.example"})
    settings.ensure_dirs()
    # the pipeline registers the champion straight into the tracking store (SQLite), as in make up; first, so
    # that it and the server do not both create the store's schema at the same time
    env = {**child_environment(), "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}
    done = subprocess.run([sys.executable, "-c", REGISTER], cwd=home, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    ports = Ports(dagster=free_port(), mlflow=free_port())
    spec = next(s for s in cli.control_plane_specs(settings, ports) if s.name == "mlflow")
    launcher = ProcessLauncher(home / "logs", cwd=ROOT, base_env=child_environment())
    proc = launcher.start(spec)
    url = f"http://{HOST}:{ports.mlflow}"
    log = home / "logs" / "mlflow.log"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.5)
        assert ensure_mlflow_reader(settings, url) == "created"
        yield Server(url, settings, log)
    finally:
        launcher.terminate(proc)
        launcher.reap(proc, 20)


def api(server: Server, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    # 60 s, not the helpers' 10: an authenticated request to the MLflow auth app took over 10 s on a loaded
    # 2-core machine (make test with other jobs running), failing the test on time, not on its answer
    return request(method, f"{server.url}/api/2.0/mlflow/{path}", body, headers, timeout=60)[:2]


ALIAS = ("POST", "registered-models/alias", {"name": "tennis-prematch", "alias": "champion", "version": "1"})
DELETE = ("DELETE", "registered-models/delete", {"name": "tennis-prematch"})
EXPERIMENT = ("POST", "experiments/create", {"name": "planted-by-an-intruder"})
NEW_VERSION = ("POST", "model-versions/create", {"name": "tennis-prematch", "source": "models:/tennis-prematch/1"})


def test_writes_without_credentials_are_refused_with_401(server):
    for method, path, body in (ALIAS, DELETE, EXPERIMENT, NEW_VERSION):
        status, _ = api(server, method, path, body)
        assert status == 401, (path, status)
    status, _ = api(server, "GET", "registered-models/get?name=tennis-prematch")
    assert status == 401  # and reads too: the UI needs a login
    with urllib.request.urlopen(f"{server.url}/health", timeout=5) as resp:
        assert resp.status == 200  # liveness stays open


def test_the_reader_may_read_but_not_move_the_champion_nor_delete_the_model(server):
    reader = basic(server.settings.mlflow_reader_user, READER_PW)
    for method, path, body in (ALIAS, DELETE, NEW_VERSION):
        status, answer = api(server, method, path, body, reader)
        assert status == 403, (path, status, answer)
    status, body = api(server, "GET", "registered-models/alias?name=tennis-prematch&alias=champion", None, reader)
    assert status == 200 and body["model_version"]["version"] == "1"
    status, _ = api(server, "GET", "registered-models/get?name=tennis-prematch", None, basic("courtside-reader",
                                                                                           "wrong-password-123"))
    assert status == 401


def test_the_prediction_service_environment_loads_the_champion_as_the_reader(server):
    """What the prediction service does (training.tracking, as serving.model_store calls it) with the
    environment ``courtside up`` gives it."""
    env = {**child_environment(), **reader_env(server.settings, server.url)}
    done = subprocess.run([sys.executable, "-c", LOAD_CHAMPION], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["version"] == "1" and loaded["features"] == ["elo_diff"] and 0.5 < loaded["p"] < 1


def test_the_administrator_may_write_and_the_reader_setup_is_idempotent(server):
    admin = basic(server.settings.mlflow_admin_user, ADMIN_PW)
    status, body = api(server, "POST", "experiments/create", {"name": "retrain-by-the-operator"}, admin)
    assert status == 200 and body["experiment_id"]
    status, _ = api(server, *ALIAS, admin)
    assert status == 200
    assert ensure_mlflow_reader(server.settings, server.url) == "password set"
    wrong = Settings.from_env({"COURTSIDE_MLFLOW_ADMIN_PASSWORD": "not-the-admin-password",
                               "COURTSIDE_MLFLOW_READER_PASSWORD": READER_PW})
    with pytest.raises(RuntimeError, match="refused the administrator"):
        ensure_mlflow_reader(wrong, server.url)
    assert ADMIN_PW not in server.log.read_text() and READER_PW not in server.log.read_text()


def test_the_host_check_refuses_names_not_configured(server):
    reader = basic(server.settings.mlflow_reader_user, READER_PW)
    path = "registered-models/get?name=tennis-prematch"
    status, _ = api(server, "GET", path, None, {**reader, "Host": "attacker.example"})
    assert status == 403
    status, _ = api(server, "GET", path, None, {**reader, "Host": "courtside.team.example:5000"})
    assert status == 200
