"""Wall time of an incremental run after one new week of results (a benchmark, not a test).

    uv run --frozen python -m benchmarks.incremental_bench [--repeat 3] [--output F.json]

Issue 12's target: after a new week of data, the run that brings it in takes <= 30 s. On a fresh state folder
and a mirror of the data folder (links, not copies), it first backfills every ATP season of the partitioned
pre-match features in one run (``season_update``, 1968-2021: the baseline, everything rebuilt), then plants one
new week -- the first week of the real 2021 results moved a year on, as ``atp_matches_2022.csv.gz`` -- and times
the run a new week starts (the data sensor's request): re-ingest the ATP results with their checks, re-clean
them, and materialize the season the week touches, 2022, from the 2021 checkpoint. The same update is timed
``--repeat`` times; the new season's rows are checked against a full walk of the new data.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks import targets

TARGET_S = targets.INCREMENTAL_WEEK_S


def mirror_data(source: Path, target: Path) -> Path:
    """A folder laid out like ``source`` whose files are links to its files."""
    for path in source.rglob("*"):
        if path.is_file():
            link = target / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return target


def plant_a_week(data: Path, year: int = 2022) -> int:
    """``atp/atp_matches_<year>.csv.gz``: the earliest week of the real ``<year - 1>`` file moved a year on.

    Returns the week's row count."""
    text = gzip.decompress((data / "atp" / f"atp_matches_{year - 1}.csv.gz").read_bytes()).decode()
    rows = list(csv.reader(text.splitlines()))
    header, body = rows[0], rows[1:]
    d, t = header.index("tourney_date"), header.index("tourney_id")
    first = min(r[d] for r in body)
    week = [r for r in body if r[d] == first]
    for r in week:
        r[d] = str(int(r[d]) + 10000)
        r[t] = r[t].replace(f"{year - 1}-", f"{year}-", 1)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *week])
    (data / "atp" / f"atp_matches_{year}.csv.gz").write_bytes(gzip.compress(buf.getvalue().encode()))
    return len(week)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", help="write the figures as JSON here")
    args = parser.parse_args(argv)

    import dagster as dg

    from courtside.settings import Settings
    from features.prematch import build_prematch_features
    from features.seasons import year_of
    from orchestration.definitions import build_definitions
    from orchestration.defs.features.seasons import run_season_update, season_store

    work = Path(tempfile.mkdtemp(prefix="courtside-incremental-"))
    try:
        source = Path(Settings.from_env().data_dir)
        data = mirror_data(source, work / "data")
        home = work / "home"
        settings = Settings.from_env({"COURTSIDE_HOME": str(home), "COURTSIDE_DATA_DIR": str(data)})
        settings.ensure_dirs()
        instance = dg.DagsterInstance.ephemeral()
        t0 = time.perf_counter()
        backfill = run_season_update(build_definitions(settings), instance, ["atp"], 1968, 2021)
        backfill_s = time.perf_counter() - t0
        if not backfill.success:
            print("backfill FAILED")
            return 1
        print(f"baseline: every ATP season 1968-2021 rebuilt (ingest, clean, features) in one run: {backfill_s:.1f} s")
        week = plant_a_week(data)
        times = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            update = run_season_update(build_definitions(settings), instance, ["atp"], 2022, 2022)
            times.append(time.perf_counter() - t0)
            if not update.success:
                print("update FAILED")
                return 1
            print(f"new week ({week} matches) -> season 2022: run {i + 1}/{args.repeat} {times[-1]:.1f} s")
        matches = pd.read_parquet(home / "warehouse" / "matches.parquet")
        players = pd.read_parquet(home / "warehouse" / "players.parquet")
        full, _ = build_prematch_features(matches, players, matches["is_tour_main"] & (year_of(matches) >= 1990))
        got = pd.read_parquet(season_store(str(home), "atp").features_path(2022))
        equal = got.equals(full[year_of(full) == 2022].reset_index(drop=True))
        median = statistics.median(times)
        print(
            f"\none new week -> its season's features: median {median:.1f} s, max {max(times):.1f} s of "
            f"{len(times)} (target <= {TARGET_S:.0f} s); every season rebuilt: {backfill_s:.1f} s; "
            f"the new season equals a full walk: {equal}"
        )
        if args.output:
            Path(args.output).write_text(
                json.dumps(
                    {
                        "times_s": times,
                        "median_s": median,
                        "backfill_s": backfill_s,
                        "week_matches": week,
                        "season_rows": len(got),
                        "equal_to_full_walk": equal,
                    },
                    indent=2,
                )
            )
        return 0 if equal else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
