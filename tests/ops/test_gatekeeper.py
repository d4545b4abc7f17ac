"""The Dagster UI behind the authenticating proxy: a real ``dagster-webserver`` on loopback with a job, the
real proxy process (``python -m courtside.gatekeeper``) on another loopback address as ``make up`` runs it
when exposed. A GraphQL ``launchRun`` without credentials is refused with 401 by the proxy and creates no
run; with them it reaches Dagster and queues the run; the UI's GraphQL WebSocket is forwarded."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets
from websockets.sync.client import connect

from courtside.gatekeeper import Credentials
from courtside.settings import PROJECT_ROOT
from tests.api.services import request
from tests.services import ROOT, free_port

USER, PASSWORD, TOKEN = "courtside", "proxy-password-7d1c", "proxy-bearer-token-93be01aa"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
EXPOSED_HOST = "127.0.0.2"
"""The "exposed" address of the tests: another loopback address, so nothing leaves the machine."""

JOB = """
import dagster as dg

@dg.op
def probe() -> int:
    return 1

@dg.job
def gatekeeper_probe():
    probe()

defs = dg.Definitions(jobs=[gatekeeper_probe])
"""
LAUNCH = """mutation Launch($p: ExecutionParams!) {
  launchRun(executionParams: $p) { __typename ... on LaunchRunSuccess { run { runId status } } }
}"""
LAUNCH_VARS = {
    "p": {
        "selector": {
            "repositoryLocationName": "probe",
            "repositoryName": "__repository__",
            "jobName": "gatekeeper_probe",
        },
        "runConfigData": {},
    }
}
RUNS = "{ runsOrError { __typename ... on Runs { results { runId } } } }"


@dataclass
class Stack:
    dagster: str
    proxy: str
    proxy_log: Path


def _start(cmd: list[str], log: Path, env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
        )


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (the proxy: 401)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("gatekeeper")
    home = folder / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_bytes((PROJECT_ROOT / "dagster.yaml").read_bytes())  # queued runs, no daemon
    (folder / "probe_job.py").write_text(JOB)
    (folder / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: probe_job.py\n      location_name: probe\n"
    )
    dagster_port, proxy_port = free_port(), free_port()
    dagster = _start(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-w",
            str(folder / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(dagster_port),
        ],
        folder / "dagster.log",
        {"DAGSTER_HOME": str(home)},
        cwd=folder,
    )
    proxy_log = folder / "proxy.log"
    proxy = _start(
        [
            sys.executable,
            "-m",
            "courtside.gatekeeper",
            "--host",
            EXPOSED_HOST,
            "--port",
            str(proxy_port),
            "--upstream",
            f"http://127.0.0.1:{dagster_port}",
        ],
        proxy_log,
        {"COURTSIDE_DAGSTER_USER": USER, "COURTSIDE_DAGSTER_PASSWORD": PASSWORD, "COURTSIDE_DAGSTER_TOKEN": TOKEN},
    )
    try:
        _wait(f"http://127.0.0.1:{dagster_port}/server_info", dagster, folder / "dagster.log")
        _wait(f"http://{EXPOSED_HOST}:{proxy_port}/server_info", proxy, proxy_log, timeout_s=30)
        yield Stack(f"http://127.0.0.1:{dagster_port}", f"http://{EXPOSED_HOST}:{proxy_port}", proxy_log)
    finally:
        _stop(proxy)
        _stop(dagster)


def graphql(url: str, query: str, variables: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    status, body, _ = request("POST", f"{url}/graphql", {"query": query, "variables": variables or {}}, headers)
    return status, body


def run_ids(stack: Stack) -> set[str]:
    status, body = graphql(stack.dagster, RUNS)
    assert status == 200, body
    return {r["runId"] for r in body["data"]["runsOrError"]["results"]}


def test_launch_run_without_credentials_is_refused_by_the_proxy_and_launches_nothing(stack):
    before = run_ids(stack)
    for headers in (
        {},
        {"Authorization": "Basic " + base64.b64encode(f"{USER}:wrong-password".encode()).decode()},
        {"Authorization": "Bearer not-the-token-at-all"},
        {"Authorization": f"Basic {PASSWORD}"},
    ):
        status, body, response_headers = request(
            "POST", f"{stack.proxy}/graphql", {"query": LAUNCH, "variables": LAUNCH_VARS}, headers
        )
        assert status == 401, body
        assert body["error"] == "unauthorized" and "credentials" in body["message"]
        assert response_headers["WWW-Authenticate"].startswith("Basic realm=")
    assert run_ids(stack) == before
    assert PASSWORD not in stack.proxy_log.read_text() and TOKEN not in stack.proxy_log.read_text()


def test_launch_run_with_credentials_reaches_dagster(stack):
    before = run_ids(stack)
    launched = set()
    for headers in (BASIC, BEARER):
        status, body = graphql(stack.proxy, LAUNCH, LAUNCH_VARS, headers)
        assert status == 200, body
        result = body["data"]["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        launched.add(result["run"]["runId"])
    assert run_ids(stack) == before | launched and len(launched) == 2


def test_the_ui_and_reads_pass_with_credentials_and_cross_site_writes_do_not(stack):
    with urllib.request.urlopen(urllib.request.Request(stack.proxy + "/", headers=BASIC), timeout=10) as resp:
        assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
        assert b"<html" in resp.read().lower()
    status, body, _ = request("GET", f"{stack.proxy}/server_info", headers=BEARER)
    assert status == 200 and body["dagster_webserver_version"]
    # a page of another site driving a browser that holds the credentials
    status, body, _ = request(
        "POST",
        f"{stack.proxy}/graphql",
        {"query": LAUNCH, "variables": LAUNCH_VARS},
        {**BASIC, "Origin": "http://evil.example"},
    )
    assert status == 403 and body["error"] == "forbidden"
    same_site = {**BASIC, "Origin": stack.proxy}
    status, body, _ = request("POST", f"{stack.proxy}/graphql", {"query": "{ version }"}, same_site)
    assert status == 200 and body["data"]["version"]


def test_a_cross_site_get_cannot_launch_a_run(stack):
    """Dagster runs GraphQL mutations over GET (``/graphql?query=mutation...``): an ``<img>`` on another site
    would send it with the browser's cached credentials and no Origin (found in review)."""
    import urllib.parse

    before = run_ids(stack)
    url = f"{stack.proxy}/graphql?" + urllib.parse.urlencode({"query": LAUNCH, "variables": json.dumps(LAUNCH_VARS)})
    status, body, _ = request(
        "GET",
        url,
        headers={**BASIC, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
    )
    assert status == 403 and body["error"] == "forbidden"
    status, body, _ = request("GET", url, headers=BASIC)  # even same-site: mutations only over POST
    assert status == 405 and body["error"] == "method_not_allowed"
    assert run_ids(stack) == before
    # a link from another site still opens the UI (a top-level navigation)
    status, _, _ = request(
        "GET",
        f"{stack.proxy}/server_info",
        headers={**BASIC, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
    )
    assert status == 200


def test_the_graphql_websocket_is_forwarded_only_with_credentials(stack):
    ws_url = stack.proxy.replace("http", "ws", 1) + "/graphql"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        connect(ws_url, subprotocols=["graphql-ws"], open_timeout=10)
    assert refused.value.response.status_code == 401
    with connect(ws_url, subprotocols=["graphql-ws"], additional_headers=BASIC, open_timeout=10) as ws:
        assert ws.subprotocol == "graphql-ws"
        ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        run_id = next(iter(run_ids(stack)), "00000000-0000-0000-0000-000000000000")
        ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "start",
                    "payload": {
                        "query": "subscription($r: ID!) { pipelineRunLogs(runId: $r) { __typename } }",
                        "variables": {"r": run_id},
                    },
                }
            )
        )
        message = json.loads(ws.recv(timeout=20))
        while message["type"] == "ka":
            message = json.loads(ws.recv(timeout=20))
        assert message["type"] == "data" and message["id"] == "1", message


def test_credentials_rules():
    both = Credentials(USER, PASSWORD, TOKEN)
    assert both.problems() == []
    assert both.allow(BASIC["Authorization"]) and both.allow(BEARER["Authorization"])
    assert both.allow("bearer " + TOKEN) and not both.allow(None) and not both.allow("")
    assert not both.allow("Basic !!!not-base64") and not both.allow("Digest x")
    assert not Credentials(USER, PASSWORD).allow(BEARER["Authorization"])  # no token configured: no bearer
    assert not Credentials(None, None, TOKEN).allow(BASIC["Authorization"])
    assert Credentials(USER, None, None).problems()
    assert Credentials(USER, "short").problems() == ["COURTSIDE_DAGSTER_PASSWORD must have at least 12 characters"]
    assert PASSWORD not in repr(both) and TOKEN not in repr(both)


def test_the_proxy_refuses_to_start_without_credentials(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURTSIDE_DAGSTER_")}
    done = subprocess.run(
        [sys.executable, "-m", "courtside.gatekeeper", "--host", EXPOSED_HOST, "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "COURTSIDE_DAGSTER_PASSWORD" in done.stderr
