"""A real ``bentoml serve`` of the prediction service for the engine tests (one per session)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prediction_service(tmp_path_factory):
    """URL of a running prediction service (no champion needed for /predict_live with a prior)."""
    home = tmp_path_factory.mktemp("service-home")
    port = free_port()
    env = {**os.environ, "COURTSIDE_HOME": str(home), "COURTSIDE_MODEL_POLL_S": "3600"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (home / "bentoml.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "bentoml"), "serve", "serving.service:PredictionService",
                             "--port", str(port), "--host", "127.0.0.1"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/livez", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"bentoml serve did not start: {(home / 'bentoml.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
