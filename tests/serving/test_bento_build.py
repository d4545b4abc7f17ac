"""The prediction service as a Bento (bentofile.yaml, issue 14): ``bentoml build`` into a fresh BentoML store with
no network at all (in a network namespace of its own where the machine allows one), then the Bento as stored -
its service, its code, its pinned packages and the Dockerfile BentoML generated - and finally the Bento served
from the store with two worker processes, answering a prediction. The served Bento imports its code from its own
``src`` folder only: the repository is taken off ``sys.path``, so a module missing from the include list fails
here rather than in a container."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from tests.api.services import send_raw
from tests.services import ROOT, free_port

pytestmark = pytest.mark.slow  # a real `bentoml build` and a real `bentoml serve` (make test-fast leaves them out)

BENTOML = str(Path(sys.executable).parent / "bentoml")
BENTO_NAME = "courtside_predictions"
ENTRY_SERVICE = "serving.service:PredictionService"


def _no_network() -> list[str]:
    """A prefix that runs a command with no network interface but loopback (``unshare -n``, as root), or nothing
    where the machine does not allow it (the build is then offline by its configuration alone)."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def _offline_env(home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",  # no usage report
        "UV_OFFLINE": "1",  # should anything reach for a package index, it fails instead of downloading
        "PIP_NO_INDEX": "1",
    }
    env.pop("BENTOML_CONFIG", None)
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(BentoML home, the Bento's tag, its folder in the store)."""
    home = tmp_path_factory.mktemp("bentoml-home")
    result = subprocess.run(
        [*_no_network(), BENTOML, "build", str(ROOT), "--output", "tag"],
        cwd=ROOT,
        env=_offline_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tag = next(line.split("__tag__:", 1)[1] for line in result.stdout.splitlines() if "__tag__:" in line).strip()
    name, version = tag.split(":")
    return home, tag, home / "bentos" / name / version


def test_the_bento_is_in_the_store_with_the_service(built):
    home, tag, folder = built
    assert tag.startswith(f"{BENTO_NAME}:")
    listed = subprocess.run(
        [BENTOML, "list", "-o", "json"], env=_offline_env(home), capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert tag in [b["tag"] for b in json.loads(listed.stdout)]
    info = yaml.safe_load((folder / "bento.yaml").read_text())
    assert info["service"] == ENTRY_SERVICE
    assert info["entry_service"] == BENTO_NAME
    assert [s["name"] for s in info["services"]] == [BENTO_NAME]
    assert info["models"] == []  # the models come from the MLflow registry at run time, not in the Bento
    paths = info["schema"]["paths"]
    assert {"/predict", "/predict_live", "/health"} <= set(paths)


def test_the_bento_holds_the_service_code_and_no_data(built):
    _, _, folder = built
    files = sorted(p.relative_to(folder / "src").as_posix() for p in (folder / "src").rglob("*") if p.is_file())
    assert "serving/service.py" in files and "serving/model_store.py" in files
    assert all(f.endswith(".py") or f == "bentofile.yaml" for f in files), files
    assert not any(
        f.startswith(("tests/", "benchmarks/", "orchestration/", "serving/api/", "serving/engine/")) for f in files
    )
    size = sum((folder / "src" / f).stat().st_size for f in files)
    assert size < 2_000_000, f"{size:,} bytes of source: data in the Bento?"


def test_the_bento_pins_the_packages_of_the_lock(built):
    _, _, folder = built
    pinned = (folder / "env" / "python" / "requirements.txt").read_text()
    expected = (ROOT / "deploy" / "bento" / "requirements.txt").read_text()
    for line in expected.splitlines():
        if line and not line.startswith("#"):
            assert line in pinned.splitlines(), line
    assert "bentoml==1.4" in pinned


def test_the_generated_dockerfile_runs_the_entry_service(built):
    """BentoML 1.4 writes ``env/docker/Dockerfile`` at build time: it installs the pinned requirements, copies the
    Bento to ``BENTO_PATH`` and starts ``entrypoint.sh``, which runs ``bentoml serve`` on that folder, whose
    ``bento.yaml`` names the entry service (the Dockerfile itself carries no service name)."""
    _, _, folder = built
    dockerfile = (folder / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install -r $BENTO_PATH/env/python/requirements.txt" in dockerfile
    assert 'ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]' in dockerfile
    assert "ARG BENTO_PATH=/home/bentoml/bento" in dockerfile
    entrypoint = (folder / "env" / "docker" / "entrypoint.sh").read_text()
    assert 'set -- bentoml serve "$@" "$BENTO_PATH"' in entrypoint
    assert yaml.safe_load((folder / "bento.yaml").read_text())["entry_service"] == BENTO_NAME


@pytest.fixture(scope="module")
def served(built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """``bentoml serve <tag>`` from the store with COURTSIDE_BENTO_WORKERS=2, no champion (an empty COURTSIDE_HOME),
    the repository off ``sys.path`` (a ``sitecustomize`` drops it: the project is installed editable), started in
    an empty folder: the code served is the Bento's."""
    home, tag, folder = built
    work = tmp_path_factory.mktemp("served")
    hook = work / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        f"import sys\nsys.path[:] = [p for p in sys.path if p.rstrip('/') != {str(ROOT)!r}]\n"
    )
    port = free_port()
    env = {
        **_offline_env(home),
        "PYTHONPATH": str(hook),
        "COURTSIDE_HOME": str(work / "courtside"),
        "COURTSIDE_BENTO_WORKERS": "2",
        "COURTSIDE_MODEL_POLL_S": "3600",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    log = work / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BENTOML, "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/livez", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bentoml serve {tag} did not start: {log.read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield url, proc, folder
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_the_served_bento_answers_a_prediction_with_two_workers(served):
    url, proc, folder = served
    body = (
        b'{"states": [{"match_id": "m", "server": 1, "prematch_probability": 0.6, "sets": [[6, 4]], "games": [2, 1]}]}'
    )
    status, raw, _ = send_raw(url, "POST", "/predict_live", body)
    assert status == 200, raw[:500]
    answer = json.loads(raw)["predictions"][0]
    assert 0.6 < answer["probability"] < 1 and answer["model_name"] == "inplay-markov-fallback"
    workers = [
        p for p in psutil.Process(proc.pid).children(recursive=True) if "_bentoml_impl.worker" in " ".join(p.cmdline())
    ]
    assert len(workers) == 2, [p.cmdline() for p in psutil.Process(proc.pid).children(recursive=True)]
    assert all(Path(w.cwd()) == folder / "src" for w in workers), [w.cwd() for w in workers]  # the Bento's code
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    lines = [line for line in metrics.splitlines() if not line.startswith("#")]
    assert any(line.startswith('courtside_predictions_total{endpoint="predict_live"') for line in lines), metrics[:3000]
    assert any(line.startswith("bentoml_service_request_total") for line in lines), metrics[:3000]
