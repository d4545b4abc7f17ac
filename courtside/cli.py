"""The ``courtside`` command: run the pipeline, bring up the services, benchmark.

    courtside up         run the whole pipeline, then keep the Dagster UI (:3000), the MLflow UI
                         (:5000), the prediction service (:3001), the feed replay (:8765), the
                         streaming engine and the live API + dashboard (:8000, WebSocket :8001)
                         running until Ctrl-C, under a supervisor that restarts what crashes
                         (courtside.supervisor). Everything listens on 127.0.0.1 unless
                         COURTSIDE_BIND_HOST says otherwise (courtside.exposure, docs/OPERATIONS.md).
                         --profile cluster: the same on PostgreSQL and Redis, with Celery workers, engine
                         workers, gateway replicas and BentoML workers (courtside.cluster, make up-cluster)
    courtside pipeline   run the whole pipeline once, recorded in the Dagster instance
    courtside windows    print the season windows the options below resolve to, checked against the data
    courtside backfill   materialize a range of seasons (tour x season partitions) of the pre-match features
    courtside worker     a Celery worker of the Dagster steps, when COURTSIDE_EXECUTOR=celery (docs/SCALING.md)

``up`` and ``pipeline`` take the season windows (``--test-seasons 2015-2016``, ``--train-seasons``, ...,
``--windows-file``; see ``courtside pipeline --help`` and ``training.windows``): they are checked against the
data before anything starts and passed to the pipeline, the Dagster UI and the services by the environment
(``COURTSIDE_TEST_SEASONS``, ...), where they can be set instead.
    courtside bench      time the pipeline from raw files to a registered model (fresh state), then
                         the live path on that state (benchmarks/live_bench.py), the in-play backtest of
                         every ATP point-by-point match (benchmarks/backtest_bench.py), the WebSocket
                         fan-out to 10,000 subscribers (benchmarks/fanout_bench.py), and one table of all
                         of them beside their baselines (benchmarks/summary.py, reports/bench.md)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy.engine import Engine

from courtside import cluster
from courtside.cluster import SINGLE, Scale
from courtside.exposure import (
    Ports,
    child_environment,
    connect_host,
    ensure_mlflow_reader,
    exposure_problems,
    listeners,
    mlflow_allowed_hosts,
    mlflow_server_env,
    proxy_env,
    public_host,
    reader_env,
    url_host,
)
from courtside.settings import PROJECT_ROOT, Settings
from courtside.supervisor import ProcessLauncher, RestartPolicy, ServiceSpec, Supervisor
from feeds.sources import data_source
from storage.live import change_controls
from storage.supervision import record_service_statuses, reset_service_statuses
from training.windows import (
    FILE_VARIABLE,
    SETTINGS,
    WHEN_NOT_SET,
    PipelineWindows,
    WindowsError,
    WindowSettings,
    check_data,
    data_seasons,
    flag,
    label,
)

DAGSTER_PORT = int(os.environ.get("COURTSIDE_DAGSTER_PORT", "3000"))
MLFLOW_PORT = int(os.environ.get("COURTSIDE_MLFLOW_PORT", "5000"))
PREDICTION_PORT = int(os.environ.get("COURTSIDE_PREDICTION_PORT", "3001"))
FEED_PORT = int(os.environ.get("COURTSIDE_FEED_PORT", "8765"))
REPLAY_DEFAULT = "--matches 16 --speed 30"
"""Options of the feed replay ``make up`` starts unless ``COURTSIDE_REPLAY_ARGS`` or ``courtside up``'s options
say otherwise (see ``python -m feeds.live --help``)."""


PIPELINE_STATE = ("replay_catalog.parquet", "player_snapshot.pickle", "prematch_features.parquet")
"""What the live lane reads from the pipeline's warehouse (``--skip-pipeline`` checks it is there)."""


def replay_args(env: Mapping[str, str]) -> list[str]:
    """The feed replay's options: ``COURTSIDE_REPLAY_ARGS`` (what ``courtside up --speed/--matches/--tour`` set)."""
    return env.get("COURTSIDE_REPLAY_ARGS", REPLAY_DEFAULT).split()


def with_replay_options(current: str, speed: float | None, matches: int | None, tour: str | None) -> str:
    """``current`` replay options with ``courtside up``'s given on top (the last of a repeated option wins)."""
    extra = []
    if speed is not None:
        extra += ["--speed", f"{speed:g}"]
    if matches is not None:
        extra += ["--matches", str(matches)]
    if tour is not None:
        extra += ["--tour", tour]
    return " ".join([current, *extra]).strip()


def add_window_options(parser: argparse.ArgumentParser) -> None:
    """The season-window options (``training.windows``); each overrides its environment variable."""
    group = parser.add_argument_group(
        "season windows",
        "inclusive ranges like 2015-2016 (or 2015); what is not given comes from the environment "
        f"({', '.join(SETTINGS.values())}), then the windows file, then the rule of training.windows (moving the test "
        "window moves validation, training, the walk-forward, the backtests, the in-play prior and the replay)",
    )
    for name, variable in SETTINGS.items():
        metavar = "SEASON" if name == "walkforward_from" else "SEASONS"
        group.add_argument(
            flag(name),
            dest=f"window_{name}",
            metavar=metavar,
            help=f"{label(name)} ({variable}; default: {WHEN_NOT_SET[name]})",
        )
    group.add_argument("--windows-file", metavar="TOML", help=f"window settings in a TOML file ({FILE_VARIABLE})")


def use_windows(args: argparse.Namespace, settings: Settings) -> PipelineWindows | None:
    """The windows of the command line over the environment's, resolved and checked against the data before any
    work starts; exported to the environment the pipeline and every service read. None (problems printed) when
    they cannot be used."""
    if getattr(args, "windows_file", None):
        os.environ[FILE_VARIABLE] = str(Path(args.windows_file).resolve())
    try:
        chosen = WindowSettings.from_env().override({k: getattr(args, f"window_{k}", None) for k in SETTINGS})
        windows = chosen.resolve()
        if settings.uses_upstream:
            print(
                "season windows not checked against the data: COURTSIDE_DATA_DIR=upstream (the pipeline checks "
                "them once the data is read)"
            )
        else:
            check_data(
                windows, data_seasons(data_source(settings.data_dir, settings.source_globs())), settings.data_dir
            )
    except (WindowsError, FileNotFoundError) as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return None
    os.environ.update(chosen.environment())
    print(windows.markdown().replace("*", ""))
    return windows


POSTGRES_INSTANCE_YAML = "dagster-postgres.yaml"
"""The Dagster instance of the production storage profile (run, event log and schedule storage in Postgres)."""


def storage_profile(env: Mapping[str, str]) -> dict[str, str]:
    """The production storage profile: what a PostgreSQL ``COURTSIDE_DATABASE_URL`` adds to the environment ``env``.

    Nothing on the default (SQLite) application database. On Postgres, the same database (and credentials) for
    Dagster's instance, schema ``dagster`` (``DAGSTER_PG_URL``, which selects ``dagster-postgres.yaml``), and for
    MLflow's tracking and registry store, schema ``mlflow`` (``MLFLOW_TRACKING_URI``: what the pipeline writes and
    ``mlflow server --backend-store-uri`` serves); either is kept when it is set already.
    """
    from storage.db import DAGSTER_SCHEMA, MLFLOW_SCHEMA, is_postgres, schema_url

    url = env.get("COURTSIDE_DATABASE_URL") or ""
    if not is_postgres(url):
        return {}
    derived = {}
    if not env.get("DAGSTER_PG_URL"):
        derived["DAGSTER_PG_URL"] = schema_url(url, DAGSTER_SCHEMA, "psycopg2")
    if not env.get("MLFLOW_TRACKING_URI"):
        derived["MLFLOW_TRACKING_URI"] = schema_url(url, MLFLOW_SCHEMA, "psycopg")
    return derived


def ensure_schemas(database_url: str, schemas: list[str]) -> None:
    """Create the profile's schemas in the application database when missing (the database's owner may)."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    from storage.db import make_engine

    engine = make_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for schema in schemas:
                try:
                    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                except (IntegrityError, ProgrammingError):  # another process created it at the same moment
                    exists = conn.exec_driver_sql(
                        "SELECT 1 FROM information_schema.schemata WHERE schema_name = %(s)s", {"s": schema}
                    ).first()
                    if not exists:
                        raise
    finally:
        engine.dispose()


def prepare_environment(settings: Settings) -> Settings:
    """Create the embedded state folders and export what child processes and libraries read; apply the production
    storage profile (``storage_profile``) when the application database is Postgres. Returns the settings as the
    profile completes them (its MLflow store)."""
    settings.ensure_dirs()
    os.environ["COURTSIDE_HOME"] = str(settings.home)
    os.environ["COURTSIDE_DATA_DIR"] = settings.data_dir
    os.environ["COURTSIDE_DATABASE_URL"] = settings.database_url
    profile = storage_profile(os.environ)
    if "MLFLOW_TRACKING_URI" in profile:
        settings = dataclasses.replace(settings, mlflow_tracking_uri=profile["MLFLOW_TRACKING_URI"])
    os.environ.update(profile)
    os.environ["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    if profile:
        from storage.db import DAGSTER_SCHEMA, MLFLOW_SCHEMA

        wanted = {"DAGSTER_PG_URL": DAGSTER_SCHEMA, "MLFLOW_TRACKING_URI": MLFLOW_SCHEMA}
        ensure_schemas(settings.database_url, [schema for var, schema in wanted.items() if var in profile])
    postgres_instance = bool(os.environ.get("DAGSTER_PG_URL"))
    if postgres_instance:
        from orchestration.defs.shared.processes import executor_choice

        os.environ.setdefault("COURTSIDE_MAX_CONCURRENT_RUNS", "4" if executor_choice() == "celery" else "1")
    instance_yaml = settings.dagster_home / "dagster.yaml"
    source_yaml = PROJECT_ROOT / (POSTGRES_INSTANCE_YAML if postgres_instance else "dagster.yaml")
    if not instance_yaml.exists() or instance_yaml.read_bytes() != source_yaml.read_bytes():
        shutil.copyfile(source_yaml, instance_yaml)
    return settings


CELERY_CONFIG_MODULE = '''"""Celery settings of this deployment's Dagster workers, written by `courtside worker`:
dagster_celery.app imports it as ``dagster_celery_config``. Every value comes from the environment
(COURTSIDE_CELERY_BROKER, ...): no URL or password is written here."""
from orchestration.defs.shared.execution import celery_settings

globals().update(celery_settings())
'''


def _redacted(url: str) -> str:
    """``url`` without its password (for printing)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def celery_worker_command(
    settings: Settings, name: str, concurrency: int = 1, queues: tuple[str, ...] = (), loglevel: str = "INFO"
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of one Celery worker of this deployment's Dagster steps (``courtside worker``):
    dagster-celery's app with this deployment's settings (``orchestration.defs.shared.execution.celery_settings``,
    through a ``dagster_celery_config`` module under DAGSTER_HOME), the code location imported once before the
    worker forks its step processes (``orchestration.preload``), one fresh process per step."""
    from orchestration.defs.shared.execution import CELERY_QUEUE

    config_dir = settings.dagster_home / "celery"
    config_dir.mkdir(parents=True, exist_ok=True)
    module = config_dir / "dagster_celery_config.py"
    if not module.exists() or module.read_text() != CELERY_CONFIG_MODULE:
        tmp = config_dir / f".dagster_celery_config.{os.getpid()}.tmp"
        tmp.write_text(CELERY_CONFIG_MODULE)
        tmp.replace(module)  # workers starting together never read half a file
    env = child_environment()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(config_dir), str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    command = [
        _venv_bin("celery"),
        "-A",
        "dagster_celery.app",
        "worker",
        "--hostname",
        f"{name}@%h",
        "--queues",
        ",".join(queues or (CELERY_QUEUE,)),
        "--concurrency",
        str(concurrency),
        "--prefetch-multiplier",
        "1",
        "--max-tasks-per-child",
        "1",
        "--include",
        "orchestration.preload",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        loglevel,
    ]
    return command, env


def worker_specs(settings: Settings) -> list[ServiceSpec]:
    """``courtside up`` with ``COURTSIDE_EXECUTOR=celery``: ``COURTSIDE_CELERY_WORKERS`` local workers (default: 2, one
    step each, as many as the default executor's step processes) under the supervisor; none otherwise. Workers on
    other machines: ``courtside worker`` there (docs/SCALING.md)."""
    from orchestration.defs.shared.processes import STEP_PROCESSES, executor_choice

    if executor_choice() != "celery":
        return []
    count = int(os.environ.get("COURTSIDE_CELERY_WORKERS") or STEP_PROCESSES)
    return [
        ServiceSpec(
            f"celery-worker-{i}",
            (sys.executable, "-m", "courtside.cli", "worker", "--name", f"courtside-{i}", "--concurrency", "1"),
        )
        for i in range(1, count + 1)
    ]


def run_backfill(instance, tours: list[str], first: int, last: int, upstream: bool = True):
    """Seasons ``first``..``last`` of ``tours`` in one run of the ``season_update`` job, through the jobs' executor
    (``dagster.execute_job``; ``run_season_update`` runs its steps in this process instead): with
    ``COURTSIDE_EXECUTOR=celery`` every step (each tour's seasons, and with ``upstream`` the ingest and clean tables
    they read) is a Celery task for the workers. Returns the ``JobExecutionResult``."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from orchestration.definitions import defs
    from orchestration.defs.features.seasons import season_selection

    selection = dg.AssetSelection.assets(*season_selection(tours))
    keys = sorted((selection.upstream() if upstream else selection).resolve(defs.resolve_asset_graph()))
    tags = {"dagster/asset_partition_range_start": str(first), "dagster/asset_partition_range_end": str(last)}
    repository = ReconstructableRepository.for_module("orchestration.definitions", "defs", str(PROJECT_ROOT))
    job = repository.get_reconstructable_job("season_update")
    return dg.execute_job(job, instance=instance, tags=tags, asset_selection=keys, raise_on_error=False)


def run_pipeline(
    job_name: str = "courtside_pipeline", instance=None, log_level: str = "INFO"
) -> tuple[bool, str, float]:
    """Execute a job in this process, recorded in the Dagster instance. Returns (ok, run id, seconds)."""
    from orchestration.defs.shared.processes import start_fork_server

    start = time.perf_counter()
    start_fork_server()  # the step processes' imports, on the other core while this one loads the definitions
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableJob

    instance = instance or dg.DagsterInstance.get()
    job = ReconstructableJob.for_module("orchestration.definitions", job_name)
    result = dg.execute_job(
        job,
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    return result.success, result.run_id, time.perf_counter() - start


def _venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _wait_http(url: str, timeout_s: float, supervisor: Supervisor | None = None) -> bool:
    """Wait until ``url`` answers (any HTTP status), supervising meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            if supervisor is not None:
                supervisor.tick()
            time.sleep(0.5)
    return False


def service_ports(settings: Settings) -> Ports:
    """The ports of ``make up`` (``COURTSIDE_*_PORT``)."""
    return Ports(DAGSTER_PORT, MLFLOW_PORT, PREDICTION_PORT, FEED_PORT, settings.api_port, settings.ws_port)


def dagster_port(settings: Settings, ports: Ports) -> int:
    """Where Dagster itself listens (on 127.0.0.1): its own port, or an internal one when the proxy takes it."""
    return settings.dagster_internal_port if settings.requires_auth else ports.dagster


def control_plane_specs(settings: Settings, ports: Ports, scale: Scale = SINGLE) -> list[ServiceSpec]:
    """Dagster UI + daemon (``dagster dev``, always on loopback), its authenticating proxy when exposed, and
    the MLflow UI (behind its basic-auth app when exposed; ``scale.mlflow_workers`` workers)."""
    host = settings.bind_host
    specs = [
        ServiceSpec(
            "dagster",
            (
                _venv_bin("dagster"),
                "dev",
                "-m",
                "orchestration.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(dagster_port(settings, ports)),
            ),
        )
    ]
    if settings.requires_auth:
        specs.append(
            ServiceSpec(
                "dagster-proxy",
                (
                    sys.executable,
                    "-m",
                    "courtside.gatekeeper",
                    "--host",
                    host,
                    "--port",
                    str(ports.dagster),
                    "--upstream",
                    f"http://127.0.0.1:{dagster_port(settings, ports)}",
                ),
                env=proxy_env(settings),
            )
        )
    mlflow = [
        _venv_bin("mlflow"),
        "server",
        "--backend-store-uri",
        settings.mlflow_tracking_uri,
        "--default-artifact-root",
        settings.mlflow_artifact_root,
        "--host",
        host,
        "--port",
        str(ports.mlflow),
        "--workers",
        str(scale.mlflow_workers),
    ]
    env: dict[str, str] = {}
    if settings.requires_auth:
        mlflow += ["--app-name", "basic-auth"]
        allowed = mlflow_allowed_hosts(settings)
        if allowed:
            mlflow += ["--allowed-hosts", allowed]
        env = mlflow_server_env(settings)
    specs.append(ServiceSpec("mlflow", tuple(mlflow), env=env))
    return specs


def live_specs(settings: Settings, ports: Ports, scale: Scale = SINGLE) -> list[ServiceSpec]:
    """The live lane: prediction service, feed replay, streaming engine, live API + gateway. When exposed,
    the prediction service loads the champions from the MLflow server as its read-only user. ``scale`` (the cluster
    profile, ``courtside.cluster``): engine workers instead of the only engine (``engine-<id>``, each with its
    metrics endpoint on the bind address), the API's replicas, the prediction service's BentoML workers."""
    host, local = settings.bind_host, url_host(connect_host(settings.bind_host))
    prediction_url = f"http://{local}:{ports.prediction}"
    prediction_env = reader_env(settings, f"http://{local}:{ports.mlflow}") if settings.requires_auth else {}
    api_env = {
        "COURTSIDE_PREDICTION_URL": os.environ.get("COURTSIDE_PREDICTION_URL") or prediction_url,
        "COURTSIDE_DAGSTER_URL": os.environ.get("COURTSIDE_DAGSTER_URL")
        or f"http://127.0.0.1:{dagster_port(settings, ports)}",
    }
    if os.environ.get("COURTSIDE_API_TOKEN"):  # the only service that gets the operator token
        api_env["COURTSIDE_API_TOKEN"] = os.environ["COURTSIDE_API_TOKEN"]
    if read_token(settings):  # and the read token of the ledger rooms (the dashboard's URL carries it)
        api_env["COURTSIDE_READ_TOKEN"] = read_token(settings) or ""
    if scale.bento_workers is not None:
        prediction_env = {**prediction_env, "COURTSIDE_BENTO_WORKERS": str(scale.bento_workers)}
    engine: tuple[str, ...] = (sys.executable, "-m", "serving.engine", "--feed-url", f"ws://{local}:{ports.feed}")
    engine += ("--prediction-url", prediction_url)
    engines = [ServiceSpec("engine", engine, pauses_betting=True)]
    if scale.engine_workers:
        engines = [
            ServiceSpec(
                f"engine-{worker}",
                (*engine, "--worker", worker),
                env={
                    "COURTSIDE_ENGINE_WORKERS": str(len(scale.engine_workers)),
                    **(
                        {"COURTSIDE_ENGINE_METRICS_PORT": str(port), "COURTSIDE_ENGINE_METRICS_HOST": host}
                        if (port := scale.metrics_port(worker)) is not None
                        else {}
                    ),
                },
                pauses_betting=True,
            )
            for worker in scale.engine_workers
        ]
    api: tuple[str, ...] = (sys.executable, "-m", "serving.api", "--host", host, "--port", str(ports.api))
    api += ("--ws-port", str(ports.ws))
    if scale.api_replicas > 1:
        api += ("--replicas", str(scale.api_replicas))
    return [
        ServiceSpec(
            "prediction-service",
            (
                _venv_bin("bentoml"),
                "serve",
                "serving.service:PredictionService",
                "--host",
                host,
                "--port",
                str(ports.prediction),
            ),
            env=prediction_env,
            pauses_betting=True,
        ),
        feed_service(host, ports.feed),
        *engines,
        ServiceSpec("live-api", api, env=api_env),
    ]


FEEDS = ("replay", "api-tennis", "standin")
VENUES = ("paper", "betfair-paper-live", "betfair-live")


def feed_service(host: str, port: int, env: Mapping[str, str] | None = None) -> ServiceSpec:
    """The live feed ``make up`` starts: the replay of real matches (default), API-Tennis's scores
    (``COURTSIDE_FEED=api-tennis``, key in ``API_TENNIS_KEY``) with Betfair's prices when
    ``COURTSIDE_VENUE=betfair-paper-live`` (credentials in ``BETFAIR_*``), or both local stand-ins
    (``COURTSIDE_FEED=standin``: real matches in the vendors' protocols, no credentials). The exchange stays the
    paper one in every case."""
    env = os.environ if env is None else env
    feed = env.get("COURTSIDE_FEED", "replay") or "replay"
    venue = env.get("COURTSIDE_VENUE", "paper") or "paper"
    if feed not in FEEDS:
        raise SystemExit(f"COURTSIDE_FEED={feed!r}: one of {', '.join(FEEDS)}")
    if venue not in VENUES:
        raise SystemExit(f"COURTSIDE_VENUE={venue!r}: one of {', '.join(VENUES)}")
    if venue == "betfair-live":
        from adapters.betfair.exchange import require_real_money

        require_real_money(env)
    if feed == "replay":
        if venue != "paper":
            raise SystemExit(f"COURTSIDE_VENUE={venue} needs live scores: COURTSIDE_FEED=api-tennis")
        return ServiceSpec(
            "feed-replay",
            (sys.executable, "-m", "feeds.live", "--host", host, "--port", str(port), *replay_args(env)),
        )
    args = [sys.executable, "-m", "adapters", "--host", host, "--port", str(port)]
    if feed == "standin":
        args += ["--standin", env.get("COURTSIDE_STANDIN_MATCHES", "4")]
    elif venue in ("betfair-paper-live", "betfair-live"):
        args += ["--prices", "betfair"]
    return ServiceSpec("feed-" + feed, tuple(args))


def operator_token_file(settings: Settings) -> Path | None:
    """Where the live API's operator token is: a new random one in COURTSIDE_HOME/api-token (readable
    by the owner only) unless COURTSIDE_API_TOKEN / COURTSIDE_API_TOKEN_FILE give one."""
    if os.environ.get("COURTSIDE_API_TOKEN") or os.environ.get("COURTSIDE_API_TOKEN_FILE"):
        return Path(os.environ["COURTSIDE_API_TOKEN_FILE"]) if os.environ.get("COURTSIDE_API_TOKEN_FILE") else None
    path = settings.home / "api-token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    os.environ["COURTSIDE_API_TOKEN_FILE"] = str(path)
    return path


def read_token(settings: Settings) -> str | None:
    """The read token of the gateway's ledger and alert rooms: ``COURTSIDE_READ_TOKEN``, else a random one
    ``make up`` keeps in COURTSIDE_HOME/read-token (owner-only) and puts in the dashboard's URL fragment."""
    if settings.read_token:
        return settings.read_token
    path = settings.home / "read-token"
    if not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip() or None


def _operator_token() -> str | None:
    token = (os.environ.get("COURTSIDE_API_TOKEN") or "").strip()
    path = os.environ.get("COURTSIDE_API_TOKEN_FILE")
    if not token and path and Path(path).is_file():
        token = Path(path).read_text().strip()
    return token or None


def restart_policy(settings: Settings) -> RestartPolicy:
    """The supervisor's policy from the settings (``COURTSIDE_CRASH_LOOP_*``, ``COURTSIDE_RESTART_BACKOFF_MAX_S``)."""
    return RestartPolicy(
        max_backoff_s=settings.restart_backoff_max_s,
        crash_loop_restarts=settings.crash_loop_restarts,
        crash_loop_window_s=settings.crash_loop_window_s,
    )


def make_supervisor(settings: Settings, db: Engine) -> Supervisor:
    """The supervisor of ``make up``: logs under COURTSIDE_HOME/logs, its view in ``service_status``, a crash loop
    of the engine or the prediction service pauses betting through the operator's controls."""

    def pause_betting(spec: ServiceSpec, reason: str) -> None:
        change_controls(db, changed_by="supervisor", paused=True, reason=reason)

    launcher = ProcessLauncher(settings.home / "logs", cwd=PROJECT_ROOT, base_env=child_environment())
    return Supervisor(
        restart_policy(settings),
        launcher,
        on_crash_loop=pause_betting,
        on_status=lambda rows: record_service_statuses(db, rows),
    )


def start_live(settings: Settings, supervisor: Supervisor, ports: Ports, scale: Scale = SINGLE) -> None:
    """The live lane on a fresh paper-trading session: prediction service, then (once it is ready) the feed
    replay, the streaming engine (or ``scale``'s engine workers) and the live API with the dashboard."""
    from storage.db import make_engine, migrate
    from storage.live import current_controls, reset_live

    db = make_engine(settings.database_url)
    migrate(db)
    reset_live(db)  # the replay starts again from its first message: a fresh paper session
    controls = current_controls(db)
    db.dispose()
    if controls["kill_switch"] or controls["paused"]:
        held = "the KILL SWITCH pulled" if controls["kill_switch"] else "betting paused"
        print(
            f"NOTE: the operator's controls (v{controls['version']}, by {controls['changed_by']}) keep {held} "
            f"(reason: {controls['reason']}); release them with the live API's /control endpoints"
        )
    prediction, *rest = live_specs(settings, ports, scale)
    supervisor.start(prediction)
    local = url_host(connect_host(settings.bind_host))
    ready = _wait_http(f"http://{local}:{ports.prediction}/readyz", 180, supervisor)
    print("prediction service " + ("ready" if ready else "still loading"))
    supervisor.start_all(rest)
    ok = _wait_http(f"http://{local}:{ports.api}/health", 60, supervisor)
    print("live API " + ("up" if ok else "still starting"))


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def cmd_up(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if use_windows(args, settings) is None:
        return 2
    if args.speed is not None and not (math.isfinite(args.speed) and args.speed > 0):
        print("--speed must be a number above 0", file=sys.stderr)
        return 2
    if args.matches is not None and args.matches < 1:
        print("--matches must be at least 1", file=sys.stderr)
        return 2
    if args.profile != "cluster" and cluster.count_options(args):
        print(f"{', '.join(cluster.count_options(args))}: only with --profile cluster", file=sys.stderr)
        return 2
    if args.skip_pipeline:
        needed = [*PIPELINE_STATE, *(["wta_replay_catalog.parquet"] if args.tour in ("wta", "both") else [])]
        missing = [n for n in needed if not (settings.warehouse_dir / n).exists()]
        if missing:
            print(
                f"--skip-pipeline: no pipeline state in {settings.home} ({', '.join(missing)} missing): "
                "run `courtside up` without it once",
                file=sys.stderr,
            )
            return 2
    # Ctrl-C and a plain kill both stop everything (SIGINT may be ignored when started in background).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    os.environ["COURTSIDE_REPLAY_ARGS"] = with_replay_options(
        os.environ.get("COURTSIDE_REPLAY_ARGS", REPLAY_DEFAULT), args.speed, args.matches, args.tour
    )
    if args.profile == "cluster":  # PostgreSQL, Redis and the profile's environment around the same body
        return cluster.up(args, lambda s, scale, describe, after_stop: serve(args, s, scale, describe, after_stop))
    return serve(args, settings)


def serve(
    args: argparse.Namespace,
    settings: Settings,
    scale: Scale = SINGLE,
    describe: Callable[[Settings, str], str] | None = None,
    after_stop: Callable[[Supervisor], None] | None = None,
) -> int:
    """The body of ``courtside up`` once its options are checked: the control plane (and Celery workers), the
    pipeline, the live lane at ``scale`` (one of each by default; ``courtside.cluster``'s with ``--profile cluster``),
    then supervision until Ctrl-C. ``describe(settings, host)``: what the profile adds to the list printed last;
    ``after_stop(supervisor)``: called once every service is stopped."""
    settings = prepare_environment(settings)
    ports = service_ports(settings)
    operator_token_file(settings)
    problems = exposure_problems(settings, _operator_token(), ports)
    if problems:
        why = (
            f"COURTSIDE_BIND_HOST={settings.bind_host} exposes the services"
            if settings.exposed
            else "COURTSIDE_PROTECT asks for protected services"
        )
        print(
            f"refusing to start: {why}, and not all of them are protected:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nsee docs/OPERATIONS.md (or leave COURTSIDE_BIND_HOST unset: everything on 127.0.0.1)",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("courtside").setLevel(logging.INFO)  # the supervisor's starts, crashes and restarts
    from storage.db import make_engine, migrate

    db = make_engine(settings.database_url)
    migrate(db)
    reset_service_statuses(db)
    supervisor = make_supervisor(settings, db)
    pipeline: subprocess.Popen | None = None
    local = url_host(connect_host(settings.bind_host))
    try:
        supervisor.start_all(control_plane_specs(settings, ports) + worker_specs(settings))
        ok = _wait_http(f"http://127.0.0.1:{dagster_port(settings, ports)}/server_info", 120, supervisor)
        # MLflow's server creates the tracking store's schema when it is new; the pipeline writes that store too
        # (SQLite, not through the server): let the server finish first rather than race it
        _wait_http(f"http://{local}:{ports.mlflow}/health", 120, supervisor)
        print(f"Dagster UI: http://{public_host(settings)}:{ports.dagster}" + ("" if ok else " (still starting)"))
        if args.skip_pipeline:
            print(f"pipeline skipped (--skip-pipeline): the models and catalog already in {settings.home}")
            code = 0
        else:
            print("running the pipeline (watch it in the Dagster UI: Runs)...")
            # A child process in our process group: Ctrl-C reaches it (Dagster marks the run failed) and reaches us.
            pipeline = subprocess.Popen(
                [sys.executable, "-m", "courtside.cli", "pipeline"], cwd=PROJECT_ROOT, env=child_environment()
            )
            supervisor.run(until=lambda: pipeline.poll() is not None)
            code = pipeline.returncode
            state = "succeeded" if code == 0 else "FAILED"
            print(f"\npipeline {state}: http://{public_host(settings)}:{ports.dagster}/runs")
        report = settings.home / "reports" / "test_evaluation.md"
        if report.exists():
            print(f"\nTest-window evaluation ({report}):\n\n{report.read_text()}")
        if settings.requires_auth:
            print(
                f"MLflow read-only user {settings.mlflow_reader_user!r}: "
                f"{ensure_mlflow_reader(settings, f'http://{local}:{ports.mlflow}')}"
            )
        if code == 0:
            start_live(settings, supervisor, ports, scale)
        else:
            print("the live lane needs the pipeline's model and catalog: not started")
        print(
            "\n"
            + "\n".join(
                f"{lst.name:<22}{lst.url}\n{'':<22}protected by: {lst.protection}" for lst in listeners(settings, ports)
            )
        )
        if code == 0:
            print(
                f"{'Dashboard (bets live)':<22}http://{public_host(settings)}:{ports.api}/dashboard/#token="
                f"{read_token(settings)}\n{'':<22}(the fragment holds the read token of the ledger room; it "
                "never leaves the browser)"
            )
        if describe is not None:
            print(describe(settings, public_host(settings)))
        engine_logs = [settings.home / "logs" / f"engine-{w}.log" for w in scale.engine_workers]
        print(f"""{"Engine log":<22}{", ".join(map(str, engine_logs)) or settings.home / "logs" / "engine.log"}
{"Operator token":<22}{os.environ.get("COURTSIDE_API_TOKEN_FILE") or "COURTSIDE_API_TOKEN"}
{"Supervisor":<22}crashed services restart with backoff; {settings.crash_loop_restarts} crashes in \
{settings.crash_loop_window_s / 60:g} min of the engine or the prediction service pause betting (resume: POST \
/control/resume); status in /health and /live/status ("services") and on the dashboard
Ctrl-C stops everything.""")
        supervisor.run()  # never returns: a crash is restarted, not the end of make up
        return 1
    except KeyboardInterrupt:
        print("\nstopping...")
        return 0
    except RuntimeError as exc:  # the MLflow administrator refused
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan services
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if pipeline is not None and pipeline.poll() is None:
            pipeline.terminate()
            try:
                pipeline.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pipeline.kill()
        supervisor.stop_all()
        if after_stop is not None:
            after_stop(supervisor)
        db.dispose()


def cmd_pipeline(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if use_windows(args, settings) is None:
        return 2
    settings = prepare_environment(settings)
    success, run_id, seconds = run_pipeline()
    print(f"pipeline {'succeeded' if success else 'FAILED'} in {seconds:.1f} s (run {run_id})")
    if not success:
        print(f"see the failed step in the Dagster UI (Runs -> {run_id}) or the log above")
    return 0 if success else 1


def cmd_windows(args: argparse.Namespace) -> int:
    """Print every window the options and the environment resolve to (exit 2 when they cannot be used)."""
    windows = use_windows(args, Settings.from_env())
    if windows is None:
        return 2
    width = max(map(len, windows.as_dict()))
    print("\n".join(f"{k:<{width}}  {v}" for k, v in windows.as_dict().items()))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Full pipeline from raw files to a registered model, on fresh state, ``--repeat`` times
    (each in a fresh process, so every repetition pays the imports): median, min and max."""
    from benchmarks import targets  # the repository's benchmarks, as every part of ``bench`` runs them

    if args.once:
        return bench_once(args)
    if args.live_only:
        return subprocess.call([sys.executable, "-m", "benchmarks.live_bench"], cwd=PROJECT_ROOT)
    if args.fanout_only:
        return fanout_bench()
    totals, reports = [], []
    for i in range(args.repeat):
        out = Path(tempfile.mkstemp(prefix="courtside-bench-", suffix=".json")[1])
        keep = ["--keep"] if i == args.repeat - 1 and not args.pipeline_only else []
        code = subprocess.call(
            [sys.executable, "-m", "courtside.cli", "bench", "--once", "--quiet", "--output", str(out), *keep]
        )
        figures = json.loads(out.read_text()) if out.stat().st_size else {"success": False}
        out.unlink()
        if code != 0 or not figures["success"]:
            print(f"repetition {i + 1} FAILED")
            return 1
        totals.append(figures["total_s"])
        reports.append(figures)
        print(f"repetition {i + 1}/{args.repeat}: {figures['total_s']:.1f} s")
    median = sorted(totals)[len(totals) // 2]
    run = next(r for r in reports if r["total_s"] == median)
    print("\nsteps of the median repetition:\n" + run["table"])
    print(
        f"\nfull pipeline, raw files -> registered champion + evaluation, {args.repeat} runs: "
        f"median {median:.1f} s, min {min(totals):.1f} s, max {max(totals):.1f} s "
        f"(target <= {targets.PIPELINE_S:.0f} s)"
    )
    if args.output:
        Path(args.output).write_text(json.dumps({"totals_s": totals, "median_s": median, "median_run": run}, indent=2))
    if args.pipeline_only:
        return 0
    home = reports[-1]["home"]  # the last repetition's state: a registered champion and its snapshot
    out_dir = Settings.from_env().home / "reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = {name: out_dir / f"{name}_bench.json" for name in ("pipeline", "live", "backtest", "fanout", "incremental")}
    for path in parts.values():
        path.unlink(missing_ok=True)
    parts["pipeline"].write_text(json.dumps({"totals_s": totals, "median_s": median, "median_run": run}, indent=2))
    print(f"\nlive path on the state of the last repetition ({home}):\n", flush=True)
    try:
        code = subprocess.call(
            [sys.executable, "-m", "benchmarks.live_bench", "--home", home, "--output", str(parts["live"])],
            cwd=PROJECT_ROOT,
        )
        print("\nin-play backtest of every ATP point-by-point match, beside a bare vectorised Markov scorer:\n")
        backtest = [sys.executable, "-m", "benchmarks.backtest_bench", "--home", home, "--matches", "0"]
        code = subprocess.call([*backtest, "--reference", "--output", str(parts["backtest"])], cwd=PROJECT_ROOT) or code
    finally:
        shutil.rmtree(home, ignore_errors=True)
    code = fanout_bench() or code
    print("\none new week of results -> its season's partition (fresh state, every season backfilled first):\n")
    incremental = [sys.executable, "-m", "benchmarks.incremental_bench", "--output", str(parts["incremental"])]
    code = subprocess.call(incremental, cwd=PROJECT_ROOT) or code
    print("\nall figures of this run (PERFORMANCE.md's targets, baselines measured in the same run):\n", flush=True)
    summary = [sys.executable, "-m", "benchmarks.summary", "--output", str(out_dir / "bench.md")]
    summary += [f"--{name}={path}" for name, path in parts.items()]
    return subprocess.call(summary, cwd=PROJECT_ROOT) or code


def fanout_bench() -> int:
    """The WebSocket fan-out benchmark (10,000 subscribers on one match); JSON in COURTSIDE_HOME/reports."""
    reports = Settings.from_env().home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    print("\nWebSocket fan-out, 10,000 subscribers on one match:\n", flush=True)
    return subprocess.call(
        [sys.executable, "-m", "benchmarks.fanout_bench", "--output", str(reports / "fanout_bench.json")],
        cwd=PROJECT_ROOT,
    )


def bench_once(args: argparse.Namespace) -> int:
    """One timed pipeline run on fresh embedded state."""
    from benchmarks import targets  # the repository's benchmarks, as every part of ``bench`` runs them

    home = Path(tempfile.mkdtemp(prefix="courtside-bench-"))
    os.environ["COURTSIDE_HOME"] = str(home)
    for var in ("COURTSIDE_DATABASE_URL", "MLFLOW_TRACKING_URI", "DAGSTER_HOME", "DAGSTER_PG_URL"):
        os.environ.pop(var, None)
    settings = Settings.from_env()
    settings = prepare_environment(settings)
    t0 = time.perf_counter()
    from orchestration.defs.shared.processes import start_fork_server

    start_fork_server()  # as ``courtside pipeline`` does: the step processes' imports beside this process's
    import dagster as dg

    import orchestration.definitions  # noqa: F401  (imports GX, MLflow, XGBoost, sklearn)

    import_s = time.perf_counter() - t0
    with dg.DagsterInstance.get() as instance:
        success, run_id, run_s = run_pipeline("courtside_pipeline", instance, "WARNING")
        stats = instance.get_run_step_stats(run_id)
    steps = sorted(((s.step_key, (s.end_time or 0) - (s.start_time or 0)) for s in stats), key=lambda x: -x[1])
    total = import_s + run_s
    lines = [
        "| step | seconds |",
        "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in steps),
        f"| (imports: dagster, GX, MLflow, XGBoost) | {import_s:.1f} |",
        f"| **total, raw files -> registered champion + evaluation** | **{total:.1f}** |",
    ]
    report = "\n".join(lines)
    if not args.quiet:
        print(report)
        print(
            f"\n{'OK' if success else 'FAILED'}: total {total:.1f} s "
            f"(target <= {targets.PIPELINE_S:.0f} s); state in {home}"
        )
    if args.output:
        Path(args.output).write_text(
            json.dumps(
                {
                    "success": success,
                    "total_s": total,
                    "import_s": import_s,
                    "run_s": run_s,
                    "steps": dict(steps),
                    "table": report,
                    "home": str(home),
                },
                indent=2,
            )
        )
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if success else 1


def cmd_errata(args: argparse.Namespace) -> int:
    """The errata the pipeline proposed: list them, or accept them into the reviewed errata file."""
    from expectations.propose_errata import accept_proposals, read_proposals

    settings = Settings.from_env()
    folder, current = settings.proposed_errata_dir, settings.errata_path
    target = Path(settings.errata_file) if settings.errata_file else settings.home / "errata.csv"
    if args.action == "list":
        proposals = read_proposals(folder, args.datasets)
        print(f"errata in force: {current}")
        if not proposals:
            print(f"no errata proposed (the ingest writes them to {folder})")
        for dataset, rows in proposals.items():
            print(f"{dataset}: {len(rows)} proposed ({folder / (dataset + '.csv')})")
            for row in rows[:20]:
                print(f"  {row['key']}{' [' + row['column'] + ']' if row.get('column') else ''}: {row['reason']}")
            if len(rows) > 20:
                print(f"  ... and {len(rows) - 20} more")
        return 0
    added = accept_proposals(folder, current, target, args.datasets)
    print(f"{len(added)} errata added to {target}; the next ingest sets those rows aside as reviewed")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """Materialize a range of seasons of the partitioned pre-match features (``season_update``), in one run."""
    import datetime as dt

    import dagster as dg

    from orchestration.definitions import build_definitions
    from orchestration.defs.features.seasons import FIRST_SEASON, TOURS, run_season_update

    settings = Settings.from_env()
    current = dt.datetime.now(dt.UTC).year
    first = FIRST_SEASON if args.first is None else args.first
    last = current if args.last is None else args.last
    if not FIRST_SEASON <= first <= last <= current:
        print(
            f"ERROR: seasons must satisfy {FIRST_SEASON} <= from <= to <= {current}; got {first}-{last}",
            file=sys.stderr,
        )
        return 2
    tours = list(TOURS) if args.tour == "both" else [args.tour]
    settings = prepare_environment(settings)
    from orchestration.defs.shared.processes import executor_choice

    t0 = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        if executor_choice() == "celery":  # the steps on the Celery workers (`courtside worker`)
            result = run_backfill(instance, tours, first, last)
        else:
            result = run_season_update(build_definitions(settings), instance, tours, first, last)
    seconds = time.perf_counter() - t0
    state = "succeeded" if result.success else "FAILED"
    print(
        f"seasons {first}-{last} of {', '.join(t.upper() for t in tours)} {state} in {seconds:.1f} s "
        f"(run {result.run_id})"
    )
    return 0 if result.success else 1


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker of this deployment's Dagster steps (replaces this process: signals reach Celery directly)."""
    from orchestration.defs.shared.execution import BROKER_VARIABLE, DEFAULT_BROKER

    if args.concurrency < 1:
        print("--concurrency must be at least 1", file=sys.stderr)
        return 2
    settings = prepare_environment(Settings.from_env())
    name = args.name or f"courtside-{os.getpid()}"
    command, env = celery_worker_command(settings, name, args.concurrency, tuple(args.queue or ()), args.loglevel)
    postgres = bool(os.environ.get("DAGSTER_PG_URL"))
    broker = os.environ.get(BROKER_VARIABLE) or DEFAULT_BROKER
    print(
        f"celery worker {name}: broker {_redacted(broker)}, {args.concurrency} step(s) at a time; Dagster instance "
        + ("in Postgres" if postgres else f"in SQLite under {settings.dagster_home}"),
        flush=True,
    )
    if not postgres:
        print(
            "NOTE: a SQLite instance is only reachable by workers on this machine; for workers elsewhere set "
            "COURTSIDE_DATABASE_URL=postgresql+psycopg://... on every machine (docs/SCALING.md)",
            file=sys.stderr,
            flush=True,
        )
    os.execve(command[0], command, env)
    return 1  # not reached


def build_parser() -> argparse.ArgumentParser:
    """The ``courtside`` command line."""
    parser = argparse.ArgumentParser(
        prog="courtside", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the pipeline and keep the UIs running")
    add_window_options(up)
    live = up.add_argument_group("live replay")
    live.add_argument(
        "--skip-pipeline",
        action="store_true",
        help="start the services on the models and catalog a previous run left in COURTSIDE_HOME",
    )
    live.add_argument("--speed", type=float, help="replay speed factor (default 30; 1 = real time)")
    live.add_argument("--matches", type=int, help="matches to replay (default 16)")
    live.add_argument("--tour", choices=("atp", "wta", "both"), help="whose matches to replay (default atp)")
    cluster.add_options(up)
    up.set_defaults(fn=cmd_up)
    pipeline = sub.add_parser("pipeline", help="run the whole pipeline once")
    add_window_options(pipeline)
    pipeline.set_defaults(fn=cmd_pipeline)
    windows = sub.add_parser("windows", help="print the season windows, checked against the data")
    add_window_options(windows)
    windows.set_defaults(fn=cmd_windows)
    bench = sub.add_parser("bench", help="time the pipeline on fresh state")
    bench.add_argument("--output", help="write the figures as JSON here")
    bench.add_argument("--keep", action="store_true", help="keep the temporary state folder")
    bench.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    bench.add_argument("--once", action="store_true", help="one run in this process")
    bench.add_argument("--quiet", action="store_true", help="no table (with --once)")
    bench.add_argument("--pipeline-only", action="store_true", help="only the pipeline benchmark")
    bench.add_argument(
        "--live-only", action="store_true", help="only the live-path benchmark (on $COURTSIDE_HOME, e.g. after make up)"
    )
    bench.add_argument(
        "--fanout-only",
        action="store_true",
        help="only the WebSocket fan-out benchmark (10,000 subscribers; needs no pipeline state)",
    )
    bench.set_defaults(fn=cmd_bench)
    errata = sub.add_parser("errata", help="the errata the data checks proposed: list them, or accept them")
    errata.add_argument("action", choices=("list", "accept"))
    errata.add_argument("datasets", nargs="*", help="only these datasets (default: all)")
    errata.set_defaults(fn=cmd_errata)
    backfill = sub.add_parser(
        "backfill", help="materialize a range of seasons of the partitioned pre-match features, in one run"
    )
    backfill.add_argument("--tour", choices=("atp", "wta", "both"), default="both")
    backfill.add_argument("--from", dest="first", type=int, help="first season (default 1968)")
    backfill.add_argument("--to", dest="last", type=int, help="last season (default: the current year)")
    backfill.set_defaults(fn=cmd_backfill)
    worker = sub.add_parser(
        "worker",
        help="a Celery worker of the Dagster steps (COURTSIDE_EXECUTOR=celery; broker: COURTSIDE_CELERY_BROKER)",
    )
    worker.add_argument("--name", help="the worker's name (default courtside-<pid>; Celery adds @<host>)")
    worker.add_argument("--concurrency", type=int, default=1, help="steps at a time (default 1)")
    worker.add_argument("--queue", action="append", help="Celery queue to take steps from (default: dagster)")
    worker.add_argument("--loglevel", default="INFO", help="Celery's log level (default INFO)")
    worker.set_defaults(fn=cmd_worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
