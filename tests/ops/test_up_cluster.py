"""``courtside up --profile cluster`` (``make up-cluster``, issue 14): the scaled form on this machine, as processes,
from the same code as the single-machine default.

Fast: the counts, ports and environment the profile takes, the specs it builds (N engine workers with their metrics
ports, the API's replicas, BentoML and MLflow workers, every listener on loopback unless ``COURTSIDE_BIND_HOST``
says otherwise), the single profile left exactly as it was, the servers named by the environment used instead of
local ones, and plain errors naming ``scripts/ensure-test-tools`` when a server program is missing.

Real (``slow``, ``postgres``): the profile's PostgreSQL keeps its data across a stop and is reused by the next start;
and ``courtside up --profile cluster`` as a subprocess on a fresh ``COURTSIDE_HOME`` and free ports, checked
through its real endpoints: PostgreSQL and Redis answer, the pipeline's Dagster run is in Postgres (schema
``dagster``) and its steps ran on both Celery workers, two engine workers are registered and both trade, two API
replicas answer on one port, the prediction service is ready with two BentoML workers; then SIGINT stops every
process, PostgreSQL's data kept. Skipped only when the PostgreSQL server or Redis binaries are missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from courtside import cli, cluster
from courtside.cluster import (
    Backing,
    ClusterCounts,
    ClusterError,
    ClusterPorts,
    LocalPostgres,
    LocalRedis,
    Scale,
    scale_of,
)
from courtside.settings import Settings
from tests.real_data import data_dir
from tests.services import ROOT, free_port

CLEARED = (
    "COURTSIDE_DATABASE_URL",
    "COURTSIDE_CELERY_BROKER",
    "COURTSIDE_CELERY_BACKEND",
    "COURTSIDE_EXECUTOR",
    "COURTSIDE_CELERY_WORKERS",
    "COURTSIDE_BENTO_WORKERS",
    "COURTSIDE_ENGINE_WORKERS",
    "COURTSIDE_ENGINE_WORKER",
    "COURTSIDE_ENGINE_METRICS_PORT",
    "COURTSIDE_BIND_HOST",
    "COURTSIDE_PROTECT",
    "MLFLOW_TRACKING_URI",
    "DAGSTER_HOME",
    "DAGSTER_PG_URL",
    "COURTSIDE_MAX_CONCURRENT_RUNS",
    *(variable for variable, _ in cluster.COUNTS.values()),
    cluster.POSTGRES_PORT_VARIABLE,
    cluster.REDIS_PORT_VARIABLE,
    cluster.ENGINE_METRICS_PORT_VARIABLE,
)
"""What the caller's environment could set that would change what these tests see."""


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"COURTSIDE_HOME": str(tmp_path), **env})


def _specs(settings: Settings, scale: Scale = cluster.SINGLE) -> dict[str, cli.ServiceSpec]:
    ports = cli.service_ports(settings)
    return {s.name: s for s in cli.control_plane_specs(settings, ports, scale) + cli.live_specs(settings, ports, scale)}


def _flag(command: tuple[str, ...], name: str) -> str:
    return command[command.index(name) + 1]


# --- the pure parts ------------------------------------------------------------------------------------------


def test_counts_are_two_of_each_unless_the_variables_or_the_options_say_otherwise():
    assert ClusterCounts.from_env({}) == ClusterCounts(2, 2, 2, 2, 2)
    env = {"COURTSIDE_CLUSTER_ENGINES": "3", "COURTSIDE_BENTO_WORKERS": "4", "COURTSIDE_CELERY_WORKERS": " 1 "}
    counts = ClusterCounts.from_env(env, {"engines": 5, "replicas": None})
    assert counts == ClusterCounts(engines=5, replicas=2, bento_workers=4, celery_workers=1, mlflow_workers=2)
    with pytest.raises(ClusterError) as bad:
        ClusterCounts.from_env({"COURTSIDE_CLUSTER_REPLICAS": "two", "COURTSIDE_CLUSTER_MLFLOW_WORKERS": "0"}, {})
    assert "COURTSIDE_CLUSTER_REPLICAS='two'" in str(bad.value) and "COURTSIDE_CLUSTER_MLFLOW_WORKERS='0'" in str(
        bad.value
    )
    with pytest.raises(ClusterError, match="--engines='0'"):
        ClusterCounts.from_env({}, {"engines": 0})
    assert ClusterPorts.from_env({}) == ClusterPorts(5433, 6380, 9100)
    assert ClusterPorts.from_env({"COURTSIDE_CLUSTER_REDIS_PORT": "7000"}).redis == 7000
    with pytest.raises(ClusterError, match="COURTSIDE_CLUSTER_POSTGRES_PORT='99999'"):
        ClusterPorts.from_env({"COURTSIDE_CLUSTER_POSTGRES_PORT": "99999"})


def test_the_command_line_takes_the_profile_and_its_counts_and_defaults_to_single():
    parser = cli.build_parser()
    assert parser.parse_args(["up"]).profile == "single"
    args = parser.parse_args(
        ["up", "--profile", "cluster", "--engines", "3", "--replicas", "4", "--bento-workers", "1"]
    )
    assert (args.profile, args.engines, args.replicas, args.bento_workers, args.celery_workers) == (
        "cluster",
        3,
        4,
        1,
        None,
    )
    assert cluster.count_options(args) == ["--engines", "--replicas", "--bento-workers"]
    assert cluster.count_options(parser.parse_args(["up", "--engines", "3"])) == ["--engines"]  # refused: single
    assert cluster.count_options(parser.parse_args(["up"])) == []
    with pytest.raises(SystemExit):
        parser.parse_args(["up", "--profile", "kubernetes"])


def test_the_cluster_specs_start_n_engine_workers_replicas_and_workers(tmp_path):
    settings = _settings(tmp_path)
    counts = ClusterCounts(engines=3, replicas=2, bento_workers=2, celery_workers=2, mlflow_workers=2)
    scale = scale_of(counts, ClusterPorts(engine_metrics=9200))
    assert scale.engine_workers == ("w1", "w2", "w3")
    services = _specs(settings, scale)
    assert set(services) == {
        "dagster",
        "mlflow",
        "prediction-service",
        "feed-replay",
        "engine-w1",
        "engine-w2",
        "engine-w3",
        "live-api",
    }
    for i, worker in enumerate(scale.engine_workers):
        spec = services[f"engine-{worker}"]
        assert spec.command[1:3] == ("-m", "serving.engine") and _flag(spec.command, "--worker") == worker
        assert spec.env == {
            "COURTSIDE_ENGINE_WORKERS": "3",
            "COURTSIDE_ENGINE_METRICS_PORT": str(9200 + i),
            "COURTSIDE_ENGINE_METRICS_HOST": "127.0.0.1",
        }
        assert spec.pauses_betting
        assert _flag(spec.command, "--feed-url") == f"ws://127.0.0.1:{cli.FEED_PORT}"
    api = services["live-api"].command
    assert _flag(api, "--replicas") == "2" and _flag(api, "--port") == str(settings.api_port)
    assert services["prediction-service"].env == {"COURTSIDE_BENTO_WORKERS": "2"}
    assert _flag(services["mlflow"].command, "--workers") == "2"
    # one replica: no --replicas (the API's own single-process form)
    one = _specs(settings, scale_of(ClusterCounts(replicas=1), ClusterPorts()))
    assert "--replicas" not in one["live-api"].command
    # the environment every process of the profile inherits
    env = cluster.cluster_environment("postgresql+psycopg://u:p@127.0.0.1:5433/courtside", "redis://:x@h:1/0", counts)
    assert env == {
        "COURTSIDE_DATABASE_URL": "postgresql+psycopg://u:p@127.0.0.1:5433/courtside",
        "COURTSIDE_EXECUTOR": "celery",
        "COURTSIDE_CELERY_BROKER": "redis://:x@h:1/0",
        "COURTSIDE_CELERY_WORKERS": "2",
    }


def test_every_listener_of_the_cluster_profile_binds_loopback_unless_the_bind_host_says_otherwise(tmp_path):
    scale = scale_of(ClusterCounts(), ClusterPorts())
    services = _specs(_settings(tmp_path), scale)
    for name in ("mlflow", "prediction-service", "feed-replay", "live-api"):
        assert _flag(services[name].command, "--host") == "127.0.0.1", name
    assert _flag(services["dagster"].command, "-h") == "127.0.0.1"
    for worker in scale.engine_workers:
        assert services[f"engine-{worker}"].env["COURTSIDE_ENGINE_METRICS_HOST"] == "127.0.0.1"
    for spec in services.values():
        assert "0.0.0.0" not in " ".join(spec.command) + " ".join(spec.env.values())
    other = _specs(_settings(tmp_path, COURTSIDE_BIND_HOST="127.0.0.2", COURTSIDE_PROTECT="1"), scale)
    assert other["engine-w1"].env["COURTSIDE_ENGINE_METRICS_HOST"] == "127.0.0.2"
    assert _flag(other["live-api"].command, "--host") == "127.0.0.2"
    assert _flag(other["dagster"].command, "-h") == "127.0.0.1"  # Dagster itself stays behind the proxy
    # PostgreSQL and Redis bind 127.0.0.1 whatever COURTSIDE_BIND_HOST says (the Redis file is written at start)
    source = Path(cluster.__file__).read_text()
    assert "listen_addresses=127.0.0.1" in source and '"bind 127.0.0.1"' in source


def test_the_single_profile_is_unchanged(tmp_path):
    settings = _settings(tmp_path)
    ports = cli.service_ports(settings)
    assert cli.live_specs(settings, ports) == cli.live_specs(settings, ports, Scale())
    services = _specs(settings)
    assert set(services) == {"dagster", "mlflow", "prediction-service", "feed-replay", "engine", "live-api"}
    assert services["engine"].command == (
        sys.executable,
        "-m",
        "serving.engine",
        "--feed-url",
        f"ws://127.0.0.1:{cli.FEED_PORT}",
        "--prediction-url",
        f"http://127.0.0.1:{cli.PREDICTION_PORT}",
    )
    assert services["engine"].env == {} and services["prediction-service"].env == {}
    assert services["live-api"].command == (
        sys.executable,
        "-m",
        "serving.api",
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.api_port),
        "--ws-port",
        str(settings.ws_port),
    )
    assert services["mlflow"].command[-2:] == ("--workers", "1")


def test_servers_named_by_the_environment_are_used_instead_of_local_ones(tmp_path):
    backing = Backing(tmp_path, ClusterPorts())
    given = {
        "COURTSIDE_DATABASE_URL": "postgresql+psycopg://app:pw@db.internal:5432/courtside",
        "COURTSIDE_CELERY_BROKER": "redis://:pw@redis.internal:6379/0",
    }
    assert backing.start(given) == (given["COURTSIDE_DATABASE_URL"], given["COURTSIDE_CELERY_BROKER"])
    assert backing.postgres is None and backing.redis is None and not (tmp_path / "cluster").exists()
    with pytest.raises(ClusterError, match="is not PostgreSQL"):
        backing.start({"COURTSIDE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert (
        cluster.redacted(given["COURTSIDE_DATABASE_URL"]) == "postgresql+psycopg://app:***@db.internal:5432/courtside"
    )


def test_a_missing_server_program_is_a_plain_error_naming_ensure_test_tools(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(ClusterError, match="scripts/ensure-test-tools postgres"):
        cluster.postgres_binaries({"PG_BINDIR": str(empty)})
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ClusterError, match="scripts/ensure-test-tools redis"):
        LocalRedis(tmp_path / "redis", free_port()).start()


@pytest.mark.slow  # a real `courtside up` (about 15 s: imports and the season windows checked against the data)
def test_courtside_up_refuses_to_start_the_cluster_without_the_postgres_binaries(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(COURTSIDE_HOME=str(tmp_path / "home"), COURTSIDE_DATA_DIR=str(data_dir()), PG_BINDIR=str(empty))
    done = subprocess.run(
        [sys.executable, "-m", "courtside.cli", "up", "--profile", "cluster"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to start the cluster profile" in done.stderr and "scripts/ensure-test-tools" in done.stderr
    assert not (tmp_path / "home" / "logs").exists()  # nothing was started


def test_what_a_service_leaves_in_its_process_group_is_ended_after_a_grace_period():
    """The group's leader exits at once; its child ignores SIGTERM (as Dagster's code server waits for its runs)."""
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 300 & exit 0"], start_new_session=True)
    proc.wait(timeout=10)
    members = cluster._group_members(proc.pid)
    assert len(members) == 1  # the sleep, orphaned in the group
    os.killpg(proc.pid, signal.SIGTERM)
    started = time.monotonic()
    assert cluster.end_process_groups([proc.pid], grace_s=0.5) == {proc.pid: members}
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while cluster._group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cluster._group_members(proc.pid) == []
    assert cluster.end_process_groups([proc.pid], grace_s=5) == {}  # nothing left: no wait


# --- real servers ---------------------------------------------------------------------------------------------


def _have_servers() -> str | None:
    """Why the real tests cannot run (the PostgreSQL server or Redis binaries are missing), or None."""
    try:
        cluster.postgres_binaries()
    except ClusterError as exc:
        return str(exc)
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (scripts/ensure-test-tools redis)"
    return None


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh COURTSIDE_HOME the ``postgres`` user can reach when we are root (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="courtside-cluster-"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.postgres
def test_the_profiles_postgres_keeps_its_data_and_is_reused(home):
    missing = _have_servers()
    if missing:
        pytest.skip(missing)
    folder = home / "cluster"
    first = LocalPostgres(folder / "postgres", free_port(), folder / "postgres.secret")
    url = first.start()
    try:
        assert (folder / "postgres.secret").stat().st_mode & 0o077 == 0
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE kept (v text)")
            conn.exec_driver_sql("INSERT INTO kept VALUES ('across a stop')")
            assert conn.exec_driver_sql("SHOW listen_addresses").scalar() == "127.0.0.1"
            assert conn.exec_driver_sql("SHOW fsync").scalar() == "on"
        engine.dispose()
        # a second start while it runs (an `up` that was killed left it): adopted, same port, same data
        again = LocalPostgres(folder / "postgres", free_port(), folder / "postgres.secret")
        assert again.start() == url and again.port == first.port
    finally:
        first.stop()
    assert (folder / "postgres" / "data" / "PG_VERSION").exists()
    assert not (folder / "postgres" / "data" / "postmaster.pid").exists()
    later = LocalPostgres(folder / "postgres", free_port(), folder / "postgres.secret")
    url = later.start()
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT v FROM kept").scalar() == "across a stop"
        engine.dispose()
        no_password = create_engine(url.replace(f":{later.password()}@", "@"))
        with pytest.raises(Exception, match="password"):
            no_password.connect().close()
        no_password.dispose()
    finally:
        later.stop()


# --- courtside up --profile cluster, end to end ----------------------------------------------------------------

MATCHES = 6
"""Replayed matches: enough that the hash of their ids gives both engine workers some (the same ids every run)."""
SPEED = "300"
WINDOWS = ("--train-seasons", "2005-2012", "--validation-seasons", "2013", "--test-seasons", "2014-2015")
"""Smaller season windows than the default (train 1991-2017, test 2019-2021): the candidates train on 8 seasons and
the walk-forward refits 5 folds instead of 11. Every one of the pipeline's 60 steps still runs, each a Celery task."""
LINGER_S = 60
"""After ``courtside up`` exits, Dagster's code servers (``dagster code-server``, ``dagster api grpc``: in the
process group of ``dagster dev``, which the supervisor stopped) finish their own shutdown; every process is gone
within this."""
STARTUP_S = 1500
"""The pipeline on two Celery workers (60 steps at a few seconds of overhead each) plus the services: about 5
minutes on the idle 2-core machine; the limit leaves room for a machine shared with other work."""


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post_json(url: str, body: dict, timeout: float = 30) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def _metric(text_: str, name: str, worker: str) -> float:
    found = re.search(rf'^{name}{{worker="{worker}"}} ([0-9.e+-]+)$', text_, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _processes_of(home: Path) -> dict[int, str]:
    """Every live process whose environment names this COURTSIDE_HOME (what the profile started), pid -> command."""
    import psutil

    found = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.environ().get("COURTSIDE_HOME") == str(home):
                found[proc.pid] = " ".join(proc.info["cmdline"] or [])[:200]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _quiet_port(consecutive: int = 1) -> int:
    """A free port of 127.0.0.1 (and the ``consecutive - 1`` after it) below the kernel's ephemeral range: the
    services bind their ports minutes after they are chosen, and a port of the ephemeral range (what binding port 0
    gives) may by then be the local end of some client connection."""
    low = 20000
    with contextlib.suppress(OSError, ValueError):
        low = min(low, int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]) - 12000)
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(max(1024, low), max(1024, low) + 12000 - consecutive)
        if port not in _CHOSEN and not any(cluster.port_in_use(p) for p in range(port, port + consecutive)):
            _CHOSEN.update(range(port, port + consecutive))
            return port
    raise RuntimeError("no free port below the ephemeral range")


_CHOSEN: set[int] = set()


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _wait(what: str, check, timeout_s: float, proc: subprocess.Popen, log: Path, every: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(
                f"courtside up exited with {proc.returncode} while waiting for {what}:\n{log.read_text()[-6000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout_s:.0f} s:\n{log.read_text()[-6000:]}")
        time.sleep(every)


@pytest.mark.slow
@pytest.mark.postgres
def test_courtside_up_profile_cluster_runs_the_scaled_form_and_ctrl_c_stops_it(home):
    missing = _have_servers()
    if missing:
        pytest.skip(missing)
    started = time.monotonic()
    ports = {name: _quiet_port() for name in ("DAGSTER", "MLFLOW", "PREDICTION", "FEED", "API", "WS")}
    pg_port, redis_port = _quiet_port(), _quiet_port()
    metrics = _quiet_port(consecutive=2)
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update({f"COURTSIDE_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(
        COURTSIDE_HOME=str(home),
        COURTSIDE_DATA_DIR=str(data_dir()),
        COURTSIDE_CLUSTER_POSTGRES_PORT=str(pg_port),
        COURTSIDE_CLUSTER_REDIS_PORT=str(redis_port),
        COURTSIDE_CLUSTER_ENGINE_METRICS_PORT=str(metrics),
        COURTSIDE_PREDICTION_URL=f"http://127.0.0.1:{ports['PREDICTION']}",  # the sensor's pre-match scan
        COURTSIDE_MODEL_POLL_S="3600",
        OMP_WAIT_POLICY="PASSIVE",
        PYTHONUNBUFFERED="1",
    )
    log = home / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "courtside.cli",
                "up",
                "--profile",
                "cluster",
                "--matches",
                str(MATCHES),
                "--speed",
                SPEED,
                *WINDOWS,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the SIGINT below is the terminal's Ctrl-C
        )
    secret = home / "cluster" / "postgres.secret"
    stopped = False
    try:
        _wait("end of the start", lambda: "Ctrl-C stops everything." in log.read_text(), STARTUP_S, proc, log, 2.0)
        started_s = time.monotonic() - started
        out_text = log.read_text()
        assert "pipeline succeeded" in out_text, out_text[-4000:]
        url = f"postgresql+psycopg://courtside:{secret.read_text().strip()}@127.0.0.1:{pg_port}/courtside"
        db = create_engine(url)

        # PostgreSQL: the profile's own, its data in COURTSIDE_HOME/cluster/postgres
        with db.connect() as conn:
            assert conn.exec_driver_sql("SHOW data_directory").scalar() == str(home / "cluster/postgres/data")
            # Dagster's runs in schema dagster: the pipeline's run succeeded
            runs = conn.execute(text("SELECT pipeline_name, status FROM dagster.runs")).all()
            assert ("courtside_pipeline", "SUCCESS") in [tuple(r) for r in runs], runs
            run_id = conn.execute(
                text("SELECT run_id FROM dagster.runs WHERE pipeline_name = 'courtside_pipeline'")
            ).scalar()
            steps = dict(
                conn.execute(
                    text(
                        "SELECT dagster_event_type, count(*) FROM dagster.event_logs WHERE run_id = :r AND "
                        "(dagster_event_type = 'STEP_SUCCESS' OR (dagster_event_type = 'ENGINE_EVENT' AND "
                        "event LIKE '%Submitting celery task for step%')) GROUP BY dagster_event_type"
                    ),
                    {"r": run_id},
                ).all()
            )
            models = {r[0] for r in conn.execute(text("SELECT name FROM mlflow.registered_models"))}
        # every step of the run was handed to Celery by dagster-celery's executor, and succeeded
        assert steps.get("STEP_SUCCESS", 0) >= 50 and steps.get("ENGINE_EVENT") == steps["STEP_SUCCESS"], steps
        assert {"tennis-prematch", "tennis-prematch-wta"} <= models, models
        # ... and the same through the Dagster UI's GraphQL API
        answer = _post_json(
            f"http://127.0.0.1:{ports['DAGSTER']}/graphql",
            {"query": "{ runsOrError { ... on Runs { results { jobName status } } } }"},
        )
        assert {"jobName": "courtside_pipeline", "status": "SUCCESS"} in answer["data"]["runsOrError"]["results"]

        # Redis: the profile's own, with a password; both Celery workers answer through it
        redis_conf = (home / "cluster" / "redis" / "redis.conf").read_text()
        password = re.search(r"^requirepass (\S+)$", redis_conf, re.MULTILINE).group(1)
        broker = f"redis://:{password}@127.0.0.1:{redis_port}/0"
        import redis
        from celery import Celery

        assert redis.Redis.from_url(broker).ping()
        assert not _listening_without_password(redis_port)
        app = Celery("probe", broker=broker, backend=broker)
        replies = {host.split("@", 1)[0] for reply in app.control.ping(timeout=5.0) or [] for host in reply}
        assert replies == {"courtside-1", "courtside-2"}, replies
        # the pipeline's steps ran on the Celery workers, on both of them
        ran = {}
        for i in (1, 2):
            worker_log = (home / "logs" / f"celery-worker-{i}.log").read_text(errors="replace")
            ran[i] = len(re.findall(r"Task execute_plan\[[0-9a-f-]+\] succeeded", worker_log))
        assert ran[1] > 0 and ran[2] > 0 and ran[1] + ran[2] >= steps["STEP_SUCCESS"], ran

        # the prediction service: ready, with its two BentoML workers
        status, _ = _get(f"http://127.0.0.1:{ports['PREDICTION']}/readyz")
        assert status == 200
        bento_workers = _bento_workers(home)
        assert len(bento_workers) == 2, bento_workers

        # two API replicas behind one port: both answer (a new connection each: the kernel spreads them)
        seen: set[str] = set()

        def both_replicas() -> set[str] | None:
            """A new connection each time: the kernel spreads them over the replicas once both listen (the API's
            supervisor starts the second after the first listens: ``live API up`` waits for the first only)."""
            for _ in range(20):
                status, body = _get(f"http://127.0.0.1:{ports['API']}/health")
                assert status == 200
                seen.add(json.loads(body)["gateway"]["replica"])
            return seen if seen == {"1/2", "2/2"} else None

        api_log = home / "logs" / "live-api.log"
        _wait("answers from both API replicas", both_replicas, 180, proc, api_log, 1.0)
        status, body = _get(f"http://127.0.0.1:{ports['API']}/readyz")
        assert status == 200, body
        assert len(_pids_matching(home, "--replica-index")) == 2

        # two engine workers registered in Postgres, each serving its metrics, both trading the replay
        with db.connect() as conn:
            registered = {r[0] for r in conn.execute(text("SELECT worker FROM engine_workers"))}
        assert registered == {"w1", "w2"}, registered
        for i, worker in enumerate(("w1", "w2")):
            status, body = _get(f"http://127.0.0.1:{metrics + i}/readyz")
            assert status in (200, 503) and json.loads(body)["worker"] == worker

        def both_trade() -> dict[str, float] | None:
            decided = {
                w: _metric(
                    _get(f"http://127.0.0.1:{metrics + i}/metrics")[1].decode(), "courtside_engine_decisions_total", w
                )
                for i, w in enumerate(("w1", "w2"))
            }
            return decided if all(decided.values()) else None

        decided = _wait("decisions by both engine workers", both_trade, 600, proc, log, 2.0)

        def reported_by_both() -> dict[str, int] | None:
            """Each worker's predictions (one a decision) as its heartbeat reports them in Postgres."""
            with db.connect() as conn:
                rows = [json.loads(p) for (p,) in conn.execute(text("SELECT payload FROM engine_status"))]
            found = {r["worker"]: r["predictions"] for r in rows if r.get("worker")}
            return found if set(found) == {"w1", "w2"} and all(found.values()) else None

        reported = _wait("both workers' figures in Postgres", reported_by_both, 120, proc, log, 2.0)

        def orders() -> dict[str, int] | None:
            """Orders reserved in Postgres under the shared limits, by the worker that placed them."""
            with db.connect() as conn:
                rows = conn.execute(text("SELECT placed_by, count(*) FROM risk_reservations GROUP BY placed_by"))
                return {worker: n for worker, n in rows} or None

        placed = _wait("orders", orders, 300, proc, log, 2.0)
        with db.connect() as conn:
            logged = conn.execute(text("SELECT count(*) FROM live_events WHERE kind = 'ORDER_PLACED'")).scalar()
            predictions = conn.execute(text("SELECT count(*) FROM live_events WHERE kind = 'PREDICTION'")).scalar()
        assert logged >= sum(placed.values()) and predictions > 0, (logged, placed, predictions)  # one event log
        db.dispose()
        running = _processes_of(home)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            try:
                proc.wait(timeout=180)
                stopped = True
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        exited = time.monotonic()
        left = _processes_of(home)
        while left and time.monotonic() - exited < LINGER_S:  # Dagster's code servers end on their own, shortly
            time.sleep(1.0)
            left = _processes_of(home)
        linger_s = time.monotonic() - exited
        for pid in left:  # nothing may be left behind, even when the test failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        data = home / "cluster" / "postgres" / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                ["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
                + [cluster.postgres_binaries()["pg_ctl"], "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )
    stop_text = log.read_text()
    assert stopped and proc.returncode == 0, stop_text[-4000:]
    assert left == {}, left
    assert len(running) >= 12, running  # up, Dagster, MLflow, 2 Celery, BentoML, feed, 2 engines, API, Redis, Postgres
    assert "PostgreSQL stopped" in stop_text and "Redis stopped" in stop_text
    assert (home / "cluster" / "postgres" / "data" / "PG_VERSION").exists()  # the data is kept
    assert not (home / "cluster" / "postgres" / "data" / "postmaster.pid").exists()  # a clean shutdown
    for port in (*ports.values(), pg_port, redis_port, metrics, metrics + 1):
        assert not _listening(port), port
    print(
        f"\ncluster profile: started in {started_s:.0f} s, decisions {decided} (in Postgres: {reported}), orders by "
        f"worker {placed}, "
        f"{len(running)} processes, the last gone {linger_s:.0f} s after courtside up exited "
        f"({stop_text.count('of its group still running after its stop')} service group(s) had to be killed), "
        f"whole test {time.monotonic() - started:.0f} s"
    )


def _listening_without_password(port: int) -> bool:
    """True when Redis answers a command without the password."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


def _pids_matching(home: Path, needle: str) -> list[int]:
    return [pid for pid, command in _processes_of(home).items() if needle in command]


def _bento_workers(home: Path) -> list[int]:
    """The BentoML worker processes of the prediction service (children of its arbiter serving the service)."""
    import psutil

    found = []
    for pid, command in _processes_of(home).items():
        if "_bentoml_impl.worker.service" in command or "bentoml_cli.worker" in command:
            with contextlib.suppress(psutil.NoSuchProcess):
                found.append(pid)
    return found
