"""The ``courtside`` command: run the pipeline, bring up the services, benchmark.

    courtside up         run the whole pipeline, then keep the Dagster UI (:3000), the MLflow UI
                         (:5000), the prediction service (:3001), the feed replay (:8765), the
                         streaming engine and the live API + dashboard (:8000, WebSocket :8001)
                         running until Ctrl-C
    courtside pipeline   run the whole pipeline once, recorded in the Dagster instance
    courtside bench      time the pipeline from raw files to a registered model (fresh state), then
                         the live path on that state (benchmarks/live_bench.py), then the WebSocket
                         fan-out to 10,000 subscribers (benchmarks/fanout_bench.py)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from courtside.settings import PROJECT_ROOT, Settings

DAGSTER_PORT = int(os.environ.get("COURTSIDE_DAGSTER_PORT", "3000"))
MLFLOW_PORT = int(os.environ.get("COURTSIDE_MLFLOW_PORT", "5000"))
PREDICTION_PORT = int(os.environ.get("COURTSIDE_PREDICTION_PORT", "3001"))
FEED_PORT = int(os.environ.get("COURTSIDE_FEED_PORT", "8765"))
REPLAY_ARGS = os.environ.get("COURTSIDE_REPLAY_ARGS", "--matches 16 --speed 30").split()
"""Options of the feed replay ``make up`` starts (see ``python -m feeds.live --help``)."""


def prepare_environment(settings: Settings) -> None:
    """Create the embedded state folders and export what child processes and libraries read."""
    settings.ensure_dirs()
    os.environ["COURTSIDE_HOME"] = str(settings.home)
    os.environ["COURTSIDE_DATA_DIR"] = settings.data_dir
    os.environ["COURTSIDE_DATABASE_URL"] = settings.database_url
    os.environ["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    instance_yaml = settings.dagster_home / "dagster.yaml"
    source_yaml = PROJECT_ROOT / "dagster.yaml"
    if not instance_yaml.exists() or instance_yaml.read_bytes() != source_yaml.read_bytes():
        shutil.copyfile(source_yaml, instance_yaml)


def run_pipeline(job_name: str = "courtside_pipeline", instance=None,
                 log_level: str = "INFO") -> tuple[bool, str, float]:
    """Execute a job in this process, recorded in the Dagster instance. Returns (ok, run id, seconds)."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableJob

    start = time.perf_counter()
    instance = instance or dg.DagsterInstance.get()
    job = ReconstructableJob.for_module("orchestration.definitions", job_name)
    result = dg.execute_job(job, instance=instance, raise_on_error=False, run_config={
        "loggers": {"console": {"config": {"log_level": log_level}}}})
    return result.success, result.run_id, time.perf_counter() - start


def _venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def _spawn(settings: Settings, commands: dict[str, list[str]]) -> list[subprocess.Popen]:
    """Start each command in its own process group, output to a log file under COURTSIDE_HOME/logs."""
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, cmd in commands.items():
        log = (logs / f"{name}.log").open("ab")
        procs.append(subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        print(f"started {name} (pid {procs[-1].pid}); log: {logs / (name + '.log')}")
    return procs


def start_services(settings: Settings) -> list[subprocess.Popen]:
    """Dagster UI + daemon (``dagster dev``) and the MLflow UI."""
    mlflow_root = settings.mlflow_artifacts_dir.as_uri()
    return _spawn(settings, {
        "dagster": [_venv_bin("dagster"), "dev", "-m", "orchestration.definitions",
                    "-h", "0.0.0.0", "-p", str(DAGSTER_PORT)],
        "mlflow": [_venv_bin("mlflow"), "server", "--backend-store-uri", settings.mlflow_tracking_uri,
                   "--default-artifact-root", mlflow_root, "--host", "0.0.0.0",
                   "--port", str(MLFLOW_PORT), "--workers", "1", "--allowed-hosts", "*"],
    })


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


def start_live(settings: Settings, procs: list[subprocess.Popen]) -> None:
    """The live lane on a fresh paper-trading session: prediction service, then (once it is ready)
    the feed replay, the streaming engine and the live API with the dashboard (appended to ``procs``
    as they start, so an interrupt meanwhile still stops them)."""
    from storage.db import make_engine, migrate
    from storage.live import current_controls, reset_live

    db = make_engine(settings.database_url)
    migrate(db)
    reset_live(db)  # the replay starts again from its first message: a fresh paper session
    controls = current_controls(db)
    db.dispose()
    if controls["kill_switch"] or controls["paused"]:
        held = "the KILL SWITCH pulled" if controls["kill_switch"] else "betting paused"
        print(f"NOTE: the operator's controls (v{controls['version']}) keep {held} (reason: {controls['reason']}); "
              "release them with the live API's /control endpoints")
    procs += _spawn(settings, {"prediction-service": [
        _venv_bin("bentoml"), "serve", "serving.service:PredictionService", "--host", "0.0.0.0",
        "--port", str(PREDICTION_PORT)]})
    ready = _wait_http(f"http://127.0.0.1:{PREDICTION_PORT}/readyz", 180)
    print(f"prediction service: http://localhost:{PREDICTION_PORT}/api/docs" + ("" if ready else " (still loading)"))
    procs += _spawn(settings, {
        "feed-replay": [sys.executable, "-m", "feeds.live", "--host", "0.0.0.0", "--port", str(FEED_PORT),
                        *REPLAY_ARGS],
        "engine": [sys.executable, "-m", "serving.engine", "--feed-url", f"ws://127.0.0.1:{FEED_PORT}",
                   "--prediction-url", f"http://127.0.0.1:{PREDICTION_PORT}"],
    })
    operator_token_file(settings)
    os.environ.setdefault("COURTSIDE_PREDICTION_URL", f"http://127.0.0.1:{PREDICTION_PORT}")  # its /health
    procs += _spawn(settings, {"live-api": [sys.executable, "-m", "serving.api", "--host", "0.0.0.0",
                                            "--port", str(settings.api_port), "--ws-port", str(settings.ws_port)]})
    ok = _wait_http(f"http://127.0.0.1:{settings.api_port}/health", 60)
    print(f"live dashboard: http://localhost:{settings.api_port}/dashboard/" + ("" if ok else " (still starting)"))


def stop_services(procs: list[subprocess.Popen]) -> None:
    """Stop every service and its children."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def cmd_up(_: argparse.Namespace) -> int:
    # Ctrl-C and a plain kill both stop everything (SIGINT may be ignored when started in background).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    settings = Settings.from_env()
    prepare_environment(settings)
    procs = start_services(settings)
    try:
        ok = _wait_http(f"http://127.0.0.1:{DAGSTER_PORT}/server_info", 120)
        print(f"Dagster UI: http://localhost:{DAGSTER_PORT}" + ("" if ok else " (still starting)"))
        print("running the pipeline (watch it in the Dagster UI: Runs)...")
        # A child process in our process group: Ctrl-C reaches it (Dagster marks the run failed)
        # and reaches us, so everything stops instead of leaving the UIs up.
        code = subprocess.call([sys.executable, "-m", "courtside.cli", "pipeline"], cwd=PROJECT_ROOT)
        print(f"\npipeline {'succeeded' if code == 0 else 'FAILED'}: http://localhost:{DAGSTER_PORT}/runs")
        report = settings.home / "reports" / "test_evaluation.md"
        if report.exists():
            print(f"\nTest-window evaluation ({report}):\n\n{report.read_text()}")
        if code == 0:
            start_live(settings, procs)
        else:
            print("the live lane needs the pipeline's model and catalog: not started")
        _wait_http(f"http://127.0.0.1:{MLFLOW_PORT}/health", 60)
        print(f"""
Dagster UI          http://localhost:{DAGSTER_PORT}   (Automation: live_event_log sensor; Runs; Assets > live)
MLflow UI           http://localhost:{MLFLOW_PORT}   (Models: tennis-prematch@champion)
Prediction service  http://localhost:{PREDICTION_PORT}/api/docs   (POST /predict, /predict_live; /metrics)
Live feed replay    ws://localhost:{FEED_PORT}/feeds/live/match   (and /market; simulated in-play prices)
Engine log          {settings.home / "logs" / "engine.log"}
Live dashboard      http://localhost:{settings.api_port}/dashboard/   (matches, win probability, value bets, bets, P&L)
Live API            http://localhost:{settings.api_port}/docs   (WebSocket ws://localhost:{settings.ws_port}/ws;
                    operator token: {os.environ.get("COURTSIDE_API_TOKEN_FILE") or "COURTSIDE_API_TOKEN"})
Ctrl-C stops everything.""")
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        dead = [p.args[0] if isinstance(p.args, list) else p.args for p in procs if p.poll() is not None]
        print(f"a service stopped unexpectedly ({', '.join(map(str, dead))}); see the logs in", settings.home / "logs")
        return 1
    except KeyboardInterrupt:
        print("\nstopping...")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan services
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_services(procs)


def cmd_pipeline(_: argparse.Namespace) -> int:
    settings = Settings.from_env()
    prepare_environment(settings)
    success, run_id, seconds = run_pipeline()
    print(f"pipeline {'succeeded' if success else 'FAILED'} in {seconds:.1f} s (run {run_id})")
    if not success:
        print(f"see the failed step in the Dagster UI (Runs -> {run_id}) or the log above")
    return 0 if success else 1


def cmd_bench(args: argparse.Namespace) -> int:
    """Full pipeline from raw files to a registered model, on fresh state, ``--repeat`` times
    (each in a fresh process, so every repetition pays the imports): median, min and max."""
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
        code = subprocess.call([sys.executable, "-m", "courtside.cli", "bench", "--once", "--quiet",
                                "--output", str(out), *keep])
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
    print(f"\nfull pipeline, raw files -> registered champion + evaluation, {args.repeat} runs: "
          f"median {median:.1f} s, min {min(totals):.1f} s, max {max(totals):.1f} s (target < 180 s)")
    if args.output:
        Path(args.output).write_text(json.dumps({"totals_s": totals, "median_s": median, "median_run": run},
                                                indent=2))
    if args.pipeline_only:
        return 0
    home = reports[-1]["home"]  # the last repetition's state: a registered champion and its snapshot
    print(f"\nlive path on the state of the last repetition ({home}):\n", flush=True)
    try:
        code = subprocess.call([sys.executable, "-m", "benchmarks.live_bench", "--home", home], cwd=PROJECT_ROOT)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return fanout_bench() or code


def fanout_bench() -> int:
    """The WebSocket fan-out benchmark (10,000 subscribers on one match); JSON in COURTSIDE_HOME/reports."""
    reports = Settings.from_env().home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    print("\nWebSocket fan-out, 10,000 subscribers on one match:\n", flush=True)
    return subprocess.call([sys.executable, "-m", "benchmarks.fanout_bench", "--output",
                            str(reports / "fanout_bench.json")], cwd=PROJECT_ROOT)


def bench_once(args: argparse.Namespace) -> int:
    """One timed pipeline run on fresh embedded state."""
    home = Path(tempfile.mkdtemp(prefix="courtside-bench-"))
    os.environ["COURTSIDE_HOME"] = str(home)
    for var in ("COURTSIDE_DATABASE_URL", "MLFLOW_TRACKING_URI", "DAGSTER_HOME"):
        os.environ.pop(var, None)
    settings = Settings.from_env()
    prepare_environment(settings)
    t0 = time.perf_counter()
    import dagster as dg

    import orchestration.definitions  # noqa: F401  (imports GX, MLflow, XGBoost, sklearn)

    import_s = time.perf_counter() - t0
    with dg.DagsterInstance.get() as instance:
        success, run_id, run_s = run_pipeline("courtside_pipeline", instance, "WARNING")
        stats = instance.get_run_step_stats(run_id)
    steps = sorted(((s.step_key, (s.end_time or 0) - (s.start_time or 0)) for s in stats),
                   key=lambda x: -x[1])
    total = import_s + run_s
    lines = [
        "| step | seconds |", "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in steps),
        f"| (imports: dagster, GX, MLflow, XGBoost) | {import_s:.1f} |",
        f"| **total, raw files -> registered champion + evaluation** | **{total:.1f}** |",
    ]
    report = "\n".join(lines)
    if not args.quiet:
        print(report)
        print(f"\n{'OK' if success else 'FAILED'}: total {total:.1f} s (target < 180 s); state in {home}")
    if args.output:
        Path(args.output).write_text(json.dumps({"success": success, "total_s": total, "import_s": import_s,
                                                 "run_s": run_s, "steps": dict(steps), "table": report,
                                                 "home": str(home)}, indent=2))
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if success else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="courtside", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the pipeline and keep the UIs running").set_defaults(fn=cmd_up)
    sub.add_parser("pipeline", help="run the whole pipeline once").set_defaults(fn=cmd_pipeline)
    bench = sub.add_parser("bench", help="time the pipeline on fresh state")
    bench.add_argument("--output", help="write the figures as JSON here")
    bench.add_argument("--keep", action="store_true", help="keep the temporary state folder")
    bench.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    bench.add_argument("--once", action="store_true", help="one run in this process")
    bench.add_argument("--quiet", action="store_true", help="no table (with --once)")
    bench.add_argument("--pipeline-only", action="store_true", help="only the pipeline benchmark")
    bench.add_argument("--live-only", action="store_true",
                       help="only the live-path benchmark (on $COURTSIDE_HOME, e.g. after make up)")
    bench.add_argument("--fanout-only", action="store_true",
                       help="only the WebSocket fan-out benchmark (10,000 subscribers; needs no pipeline state)")
    bench.set_defaults(fn=cmd_bench)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
