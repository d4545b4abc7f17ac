"""Wall time of a backfill of the partitioned pre-match features on Celery workers (a benchmark, not a test).

    uv run --frozen python -m benchmarks.celery_backfill_bench [--repeat 2] [--from 1968] [--to 2021]
                                                               [--with-upstream] [--output F.json]

Issue 14: the Dagster steps spread over Celery workers. On a fresh state folder, a throwaway PostgreSQL server
(``scripts/test-postgres``: application database, Dagster instance, MLflow store -- the production storage
profile) and a throwaway Redis (``scripts/test-redis``: the Celery broker), all started here, it first
materializes the unpartitioned assets the season features read (ingest, checks, clean tables of both tours) once,
outside the timing, then times the ``season_update`` run of the seasons ``--from``..``--to`` of both tours
(``atp_season_features`` and ``wta_season_features``: partitions by tour and season; each tour's range is one
step, its seasons walked in order from the previous season's state) with:

* ``in_process``: ``execute_in_process``, every step in the calling process (``courtside backfill``'s default);
* ``multiprocess``: the jobs' default executor, two step processes forked from a preloaded server;
* ``celery_1``: the Celery executor (``COURTSIDE_EXECUTOR=celery``) with one ``courtside worker`` of concurrency 1;
* ``celery_2``: the same with two such workers.

Every mode runs ``--repeat`` times, interleaved (one run of each mode, then again in the reverse order: the shared
machine's load drifts); the season store is deleted before each run, so each run recomputes every season. The
workers are started once, before the timing (they import the code location once; every step is a fresh fork), and
the second one stops taking steps (Celery's ``cancel_consumer``) for the ``celery_1`` runs. ``--with-upstream``
times the whole ``season_update`` run instead (re-ingest and re-clean both tours, then the seasons: what
``courtside backfill`` runs). Reports each run's wall time, the summed step time and which worker ran each step;
the speed-up of 2 workers over 1 (on the medians, and the median of each repeat's pair); the most two workers can
gain with these steps; and how much two busy processes at once get done on this machine at the start and the end
(the shared machine's parallel capacity, the ceiling of any speed-up measured beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("in_process", "multiprocess", "celery_1", "celery_2")
TOURS = ["atp", "wta"]
WORKERS = ("bench-1", "bench-2")
CLEARED = (
    "COURTSIDE_EXECUTOR",
    "MLFLOW_TRACKING_URI",
    "DAGSTER_HOME",
    "DAGSTER_PG_URL",
    "COURTSIDE_MAX_CONCURRENT_RUNS",
)


# --- one timed run, in a process of its own (the executor is chosen when the code location loads) ---


def drive(mode: str, what: str, first: int, last: int) -> dict:
    """Run the backfill in this process as ``mode`` says; the figures as a dict."""
    from courtside import cli
    from courtside.settings import Settings

    settings = cli.prepare_environment(Settings.from_env())
    if mode == "multiprocess":
        from orchestration.defs.shared.processes import start_fork_server

        start_fork_server()  # as `courtside pipeline`: the step processes' imports while the definitions load
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.defs.features.seasons import season_selection

    graph = defs.resolve_asset_graph()
    seasons = dg.AssetSelection.assets(*season_selection(TOURS))
    tags = {"dagster/asset_partition_range_start": str(first), "dagster/asset_partition_range_end": str(last)}
    with dg.DagsterInstance.get() as instance:
        t0 = time.perf_counter()
        if mode in ("in_process", "upstream"):
            selection = {
                "upstream": seasons.upstream() - seasons,
                "seasons": seasons,
                "all": seasons.upstream(),
            }[what if mode == "in_process" else "upstream"]
            result = defs.resolve_job_def("season_update").execute_in_process(
                instance=instance, tags=tags, asset_selection=sorted(selection.resolve(graph)), raise_on_error=False
            )
        else:
            result = cli.run_backfill(instance, TOURS, first, last, upstream=what == "all")
        wall = time.perf_counter() - t0
        steps = {
            s.step_key: round((s.end_time or 0) - (s.start_time or 0), 2)
            for s in instance.get_run_step_stats(result.run_id)
        }
        ran_on = {}
        for record in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = record.dagster_event
            metadata = event.event_specific_data.metadata if event and event.event_specific_data else {}
            if "Celery worker" in metadata:
                ran_on[event.step_key] = metadata["Celery worker"].value
        materialized = sorted(
            f"{key.to_user_string()}:{partition}"
            for key in (dg.AssetKey("atp_season_features"), dg.AssetKey("wta_season_features"))
            for partition in instance.get_materialized_partitions(key)
        )
    return {
        "mode": mode,
        "what": what,
        "success": result.success,
        "run_id": result.run_id,
        "wall_s": round(wall, 2),
        "step_s": round(sum(steps.values()), 2),
        "steps": steps,
        "ran_on": ran_on,
        "season_partitions": len(materialized),
        "postgres_instance": bool(os.environ.get("DAGSTER_PG_URL")),
        "home": str(settings.home),
    }


# --- the benchmark: servers, workers, the runs ---


def _script(name: str, *args: str) -> str:
    done = subprocess.run([str(ROOT / "scripts" / name), *args], capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"scripts/{name} {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def _run_driver(env: dict[str, str], mode: str, what: str, first: int, last: int, log: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.celery_backfill_bench", "--drive", mode, "--what", what]
    command += ["--from", str(first), "--to", str(last)]
    with log.open("a") as fh:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=fh, text=True, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"{mode} run failed (exit {done.returncode}); see {log}")
    return json.loads(lines[-1])


class Workers:
    """``courtside worker`` processes (each in a process group of its own, stopped by its id)."""

    def __init__(self, env: dict[str, str], logs: Path, broker: str):
        self.env, self.logs, self.procs = env, logs, {}
        from celery import Celery

        self.app = Celery("bench", broker=broker, backend=broker)
        self.hosts: dict[str, str] = {}

    def start(self, names: tuple[str, ...], timeout_s: float = 600) -> None:
        for name in names:
            log = (self.logs / f"worker-{name}.log").open("w")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "courtside.cli", "worker", "--name", name, "--loglevel", "WARNING"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while set(self.hosts) < set(names):
            for reply in self.app.control.ping(timeout=1.0) or []:
                for host in reply:
                    self.hosts[host.split("@", 1)[0]] = host
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {name} exited ({proc.returncode}); see {self.logs}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready after {timeout_s:.0f} s; see {self.logs}")

    def consume(self, name: str, on: bool) -> None:
        """Let worker ``name`` take steps from the queue, or stop it taking any."""
        from orchestration.defs.shared.execution import CELERY_QUEUE

        control = self.app.control.add_consumer if on else self.app.control.cancel_consumer
        control(CELERY_QUEUE, destination=[self.hosts[name]], reply=True, timeout=5)
        deadline = time.monotonic() + 30
        while True:
            queues = (self.app.control.inspect(destination=[self.hosts[name]], timeout=2).active_queues() or {}).get(
                self.hosts[name], []
            )
            if any(q["name"] == CELERY_QUEUE for q in queues) == on:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {name}: queue {CELERY_QUEUE} still {'off' if on else 'on'}")
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the group this process started: the worker and its pool
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _load() -> float:
    return os.getloadavg()[0]


PROBE = "x = 0\nfor i in range(15_000_000):\n    x += i * i\n"


def parallel_capacity() -> float:
    """How much two processes get done at once, as a multiple of one alone, on this machine now: a pure-Python
    busy loop timed alone, then two copies at the same time (2.0 on two idle cores; less when other people's
    processes take a core). The ceiling of any speed-up 1 -> 2 workers measured beside it."""

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", PROBE])

    t0 = time.perf_counter()
    start().communicate()
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    for proc in [start(), start()]:
        proc.communicate()
    return 2 * one / (time.perf_counter() - t0)


def _table(runs: list[dict], modes: tuple[str, ...]) -> tuple[str, dict[str, float]]:
    medians = {m: statistics.median(r["wall_s"] for r in runs if r["mode"] == m) for m in modes}
    base = medians["in_process"]
    lines = [
        "| executor | runs: wall s | median wall s | summed step s (median) | vs in-process |",
        "|---|---|---|---|---|",
    ]
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in mine)
        step = statistics.median(r["step_s"] for r in mine)
        lines.append(f"| {mode} | {walls} | {medians[mode]:.1f} | {step:.1f} | {base / medians[mode]:.2f}x |")
    return "\n".join(lines), medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each mode (default 2)")
    parser.add_argument("--from", dest="first", type=int, default=1968, help="first season (default 1968)")
    parser.add_argument("--to", dest="last", type=int, default=2021, help="last season (default 2021)")
    parser.add_argument("--with-upstream", action="store_true", help="time the ingest and clean tables too")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    parser.add_argument("--output", help="write the figures as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (state, logs)")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("--what", default="seasons", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        print(json.dumps(drive(args.drive, args.what, args.first, args.last)), flush=True)
        return 0

    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = set(modes) - set(MODES)
    if unknown or "in_process" not in modes:
        print(f"--modes: one or more of {', '.join(MODES)}, in_process among them", file=sys.stderr)
        return 2
    what = "all" if args.with_upstream else "seasons"
    work = Path(tempfile.mkdtemp(prefix="courtside-celery-bench-"))
    logs = work / "logs"
    logs.mkdir()
    print(f"work folder {work} (logs in {logs})", flush=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load_start = _load()
    # a folder of its own: as root the server runs as `postgres`, who may not enter the work folder (mode 700)
    pg_dir, redis_dir, workers = Path(tempfile.mkdtemp(prefix="courtside-bench-pg-")), work / "redis", None
    try:
        pg_admin = _script("test-postgres", "start", str(pg_dir))
        broker = _script("test-redis", "start", str(redis_dir))
        from sqlalchemy import create_engine, make_url

        admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE courtside_bench")
        admin.dispose()
        database = make_url(pg_admin).set(database="courtside_bench").render_as_string(hide_password=False)
        env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        env.update(
            COURTSIDE_HOME=str(work / "home"),
            COURTSIDE_DATABASE_URL=database,
            COURTSIDE_CELERY_BROKER=broker,
            OMP_WAIT_POLICY="PASSIVE",
        )
        capacity_start = parallel_capacity()
        print(f"two busy processes at once: {capacity_start:.2f}x the work of one (2.00 on two idle cores)")
        print(f"PostgreSQL {make_url(pg_admin).port}, Redis {broker}; the upstream assets once ...", flush=True)
        upstream = _run_driver(env, "upstream", "upstream", args.first, args.last, logs / "upstream.log")
        print(f"  upstream (ingest, checks, clean tables of both tours, in process): {upstream['wall_s']:.1f} s")
        celery_env = {**env, "COURTSIDE_EXECUTOR": "celery"}
        if any(m.startswith("celery") for m in modes):
            t0 = time.perf_counter()
            workers = Workers(celery_env, logs, broker)
            workers.start(WORKERS)
            print(f"  2 workers ready in {time.perf_counter() - t0:.1f} s: {', '.join(workers.hosts.values())}")
        runs = []
        for i in range(args.repeat):
            for mode in modes if i % 2 == 0 else tuple(reversed(modes)):  # ABBA: a steady drift in load cancels
                shutil.rmtree(work / "home" / "warehouse" / "seasons", ignore_errors=True)
                if mode.startswith("celery"):
                    workers.consume(WORKERS[1], mode == "celery_2")
                load_before = round(_load(), 2)
                run = _run_driver(
                    celery_env if mode.startswith("celery") else env,
                    mode,
                    what,
                    args.first,
                    args.last,
                    logs / "runs.log",
                )
                run["load_before"], run["load_after"] = load_before, round(_load(), 2)
                runs.append(run)
                placed = ", ".join(f"{k}@{v.split('@')[0]}" for k, v in sorted(run["ran_on"].items()))
                print(
                    f"run {i + 1}/{args.repeat} {mode:<12} {'ok' if run['success'] else 'FAILED'} wall "
                    f"{run['wall_s']:6.1f} s, steps {run['step_s']:6.1f} s, {run['season_partitions']} season "
                    f"partitions" + (f"; {placed}" if placed else ""),
                    flush=True,
                )
                if not run["success"]:
                    return 1
        capacity_end = parallel_capacity()
        table, medians = _table(runs, modes)
        speedup = pairwise = ideal = None
        if {"celery_1", "celery_2"} <= set(modes):
            speedup = medians["celery_1"] / medians["celery_2"]
            ones = [r for r in runs if r["mode"] == "celery_1"]
            twos = [r for r in runs if r["mode"] == "celery_2"]
            pairwise = statistics.median(a["wall_s"] / b["wall_s"] for a, b in zip(ones, twos, strict=True))
            # the most two workers can gain here: two steps at a time, each as long as alone, no dependency, no
            # overhead -- the summed steps over the longer of (the longest step, half the sum)
            ideal = statistics.median(
                sum(r["steps"].values()) / max(max(r["steps"].values()), sum(r["steps"].values()) / 2) for r in ones
            )
        seasons = f"{args.first}-{args.last}"
        print(
            f"\nBackfill of seasons {seasons} of ATP and WTA ({'ingest + clean + ' if what == 'all' else ''}"
            f"season features), {started}, {os.cpu_count()} cores, load {load_start:.2f} -> {_load():.2f}; "
            f"two processes at once got {capacity_start:.2f}x (start) and {capacity_end:.2f}x (end) of one's work "
            "done (2.00 on two idle cores)\n"
        )
        print(table)
        if speedup is not None:
            print(
                f"\nspeed-up 1 -> 2 Celery workers: {speedup:.2f}x on the medians, {pairwise:.2f}x the median of each "
                f"repeat's pair (run one after the other); at most {ideal:.2f}x with these steps (two at a time, none "
                "slower, their order and the overhead ignored)"
            )
        if args.output:
            Path(args.output).write_text(
                json.dumps(
                    {
                        "started": started,
                        "seasons": seasons,
                        "what": what,
                        "cores": os.cpu_count(),
                        "platform": platform.platform(),
                        "load_start": load_start,
                        "load_end": _load(),
                        "upstream_s": upstream["wall_s"],
                        "runs": runs,
                        "median_wall_s": medians,
                        "speedup_1_to_2_workers": speedup,
                        "speedup_pairwise_median": pairwise,
                        "speedup_ceiling_of_the_steps": ideal,
                        "parallel_capacity": [capacity_start, capacity_end],
                        "table": table,
                    },
                    indent=2,
                )
            )
        return 0
    finally:
        if workers is not None:
            workers.stop()
        for script, folder in (("test-redis", redis_dir), ("test-postgres", pg_dir)):
            if folder.exists():
                subprocess.run([str(ROOT / "scripts" / script), "stop", str(folder)], capture_output=True, timeout=120)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
