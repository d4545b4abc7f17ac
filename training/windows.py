"""The season windows of the whole pipeline, configured once and derived by one rule.

Every asset that splits seasons takes its windows from here (in Dagster: the ``windows`` resource,
``orchestration.defs.shared.resources.WindowsResource``): the pre-match models, the walk-forward, both
backtests, the in-play models and their pre-match prior, and the replay catalog the live feed publishes.

Settings (each optional; what is not set is derived by the rule below), as environment variable and
command-line flag (``courtside pipeline``, ``courtside up`` and ``courtside windows``, which only prints them):

- ``train``: ``COURTSIDE_TRAIN_SEASONS``, ``--train-seasons``; default 1991 up to the season before validation
- ``validation``: ``COURTSIDE_VALIDATION_SEASONS``, ``--validation-seasons``; default the season before the test
  window
- ``test``: ``COURTSIDE_TEST_SEASONS``, ``--test-seasons``; default 2019-2021
- ``walkforward_from``: ``COURTSIDE_WALKFORWARD_FROM``, ``--walkforward-from``; default 2011, or the first
  validation season if that is earlier
- ``inplay_train`` / ``inplay_validation`` / ``inplay_test``: ``COURTSIDE_INPLAY_TRAIN_SEASONS`` (...),
  ``--inplay-train-seasons`` (...); default 2011-2013 / 2014 / 2015
- ``replay``: ``COURTSIDE_REPLAY_SEASONS``, ``--replay-seasons``; default per source: its matches of the test
  window if it has any there, else all its matches

A range is ``2019-2021`` (inclusive) or ``2019`` for one season; ``replay`` also takes ``all``. The same
keys can be written in a TOML file named by ``COURTSIDE_WINDOWS_FILE`` (or ``--windows-file``), e.g.
``test = "2015-2016"``. Precedence: command line, then environment, then file, then the rule.

The rule (what moves when the test window moves):

- **validation and training** follow the test window unless set: validation is the season just before
  it, training every season from 1991 up to validation (and the test window).
- **walk-forward** predicts every season from ``walkforward_from`` to the last test season, each with a
  model refitted on all earlier seasons from the first training season; the seasons before the test
  window are its validation seasons (where the tree count, calibration map and thresholds are chosen),
  the test window is scored once.
- **backtests** (not settable): the pre-match backtest chooses its thresholds on the walk-forward's
  validation seasons and replays the test window once with them; the in-play backtest replays the
  replay matches.
- **in-play** models keep their own seasons (the point-by-point archive's, 2011-2015 here); their
  pre-match prior is the walk-forward's out-of-sample probability, so it moves with the test window,
  and every in-play season must lie inside the walk-forward's seasons.
- **replay**: the matches the live feed publishes and the in-play backtest replays. Unless set, each
  source replays its matches of the test window when it has some there (the pre-match model has not
  seen them), else all its matches (the catalog marks each match's window, in-sample or not).

Checks, before any work starts (one ``WindowsError`` listing every problem, each naming the window and
its seasons): unreadable ranges, reversed or empty windows, overlapping or misordered train /
validation / test (and in-play) windows, a walk-forward without validation seasons or warm-up, in-play
seasons without a walk-forward prior, and (``check_data``) seasons without data.
"""

from __future__ import annotations

import io
import operator
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from training.splits import Windows

if TYPE_CHECKING:
    import pandas as pd

    from feeds.sources import DataSource

TRAIN_FROM = Windows.train_start
"""First training season when training is not set (rankings are sparse before the ATP computer era)."""
TEST = (Windows.test_start, Windows.test_end)
"""The test window when it is not set."""
VALIDATION_LENGTH = Windows.validation_end - Windows.validation_start + 1
"""Seasons of the derived validation window (just before the test window)."""
WALKFORWARD_FROM = 2011
"""First season the walk-forward reports when ``walkforward_from`` is not set."""
WALKFORWARD_WARMUP = 2
"""Warm-up folds before the walk-forward's first season (they only feed its calibration history)."""
INPLAY_WINDOWS = Windows(
    train_start=2011, train_end=2013, validation_start=2014, validation_end=2014, test_start=2015, test_end=2015
)
"""Default seasons of the in-play splits (the point-by-point archive covers 2011-2015)."""

SETTINGS: dict[str, str] = {
    "train": "COURTSIDE_TRAIN_SEASONS",
    "validation": "COURTSIDE_VALIDATION_SEASONS",
    "test": "COURTSIDE_TEST_SEASONS",
    "walkforward_from": "COURTSIDE_WALKFORWARD_FROM",
    "inplay_train": "COURTSIDE_INPLAY_TRAIN_SEASONS",
    "inplay_validation": "COURTSIDE_INPLAY_VALIDATION_SEASONS",
    "inplay_test": "COURTSIDE_INPLAY_TEST_SEASONS",
    "replay": "COURTSIDE_REPLAY_SEASONS",
}
"""Every setting and its environment variable (the command-line flag: ``flag(name)``)."""
WHEN_NOT_SET: dict[str, str] = {
    "train": f"{TRAIN_FROM} up to the season before validation",
    "validation": "the season before the test window",
    "test": f"{TEST[0]}-{TEST[1]}",
    "walkforward_from": f"{WALKFORWARD_FROM}, or the first validation season if earlier",
    "inplay_train": f"{INPLAY_WINDOWS.train_start}-{INPLAY_WINDOWS.train_end}",
    "inplay_validation": f"{INPLAY_WINDOWS.validation_start}",
    "inplay_test": f"{INPLAY_WINDOWS.test_start}",
    "replay": "per source, its matches of the test window if any, else all; 'all' for every season",
}
"""What the rule makes of each setting when it is not set (help texts)."""
FILE_VARIABLE = "COURTSIDE_WINDOWS_FILE"
"""Environment variable naming a TOML file of settings."""
ALL = "all"
"""``replay`` value: every season of every source."""

_RANGE = re.compile(r"^\s*(\d{4})\s*(?:-\s*(\d{4})\s*)?$")


class WindowsError(ValueError):
    """Windows that cannot be used; the message lists every problem, one a line."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(f"season windows: {self.problems[0]}")
        else:
            super().__init__("season windows:\n" + "\n".join(f"  - {p}" for p in self.problems))


def flag(name: str) -> str:
    """The command-line flag of a setting: ``--test-seasons``, ``--walkforward-from``."""
    return "--" + (name if name == "walkforward_from" else f"{name}_seasons").replace("_", "-")


def label(name: str) -> str:
    """How messages and reports name a window: ``in-play test``, ``walk-forward``."""
    return name.replace("inplay_", "in-play ").replace("walkforward", "walk-forward").replace("_", " ")


def compact(seasons: Iterable[int]) -> str:
    """``[2019, 2020, 2021, 2023]`` -> ``2019-2021, 2023``."""
    out: list[str] = []
    run: list[int] = []
    for s in sorted(set(seasons)):
        if run and s != run[-1] + 1:
            out.append(str(Seasons(run[0], run[-1])))
            run = []
        run.append(s)
    if run:
        out.append(str(Seasons(run[0], run[-1])))
    return ", ".join(out) or "none"


@dataclass(frozen=True, order=True)
class Seasons:
    """An inclusive range of seasons (possibly empty or reversed until validated)."""

    first: int
    last: int

    @classmethod
    def parse(cls, text: str | int, name: str) -> Seasons:
        m = _RANGE.match(str(text))
        if not m:
            raise WindowsError(
                [
                    f"{label(name)} seasons {str(text)!r}: not a season range "
                    f"(write e.g. 2019-2021, or 2019 for one season)"
                ]
            )
        first = int(m.group(1))
        return cls(first, int(m.group(2) or first))

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    @property
    def empty(self) -> bool:
        return self.last < self.first

    def seasons(self) -> range:
        return range(self.first, self.last + 1)

    def __contains__(self, season: object) -> bool:
        try:
            return self.first <= operator.index(season) <= self.last  # type: ignore[arg-type]
        except TypeError:
            return False

    def common(self, other: Seasons) -> Seasons:
        return Seasons(max(self.first, other.first), min(self.last, other.last))

    def mask(self, season: pd.Series) -> pd.Series:
        """True for the rows of ``season`` inside this range."""
        return (season >= self.first) & (season <= self.last)


@dataclass(frozen=True)
class WindowSettings:
    """The windows as set (by command line, environment or file); None: derived by the rule."""

    train: str | None = None
    validation: str | None = None
    test: str | None = None
    walkforward_from: str | None = None
    inplay_train: str | None = None
    inplay_validation: str | None = None
    inplay_test: str | None = None
    replay: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], where: str) -> WindowSettings:
        """Settings by name (a windows file's keys, a Dagster resource's config); empty values are unset."""
        unknown = sorted(set(values) - set(SETTINGS))
        if unknown:
            raise WindowsError([f"{where}: unknown window settings {unknown} (known: {', '.join(SETTINGS)})"])
        return cls(**{k: str(v).strip() for k, v in values.items() if v is not None and str(v).strip()})

    @classmethod
    def from_file(cls, path: str | Path) -> WindowSettings:
        """The settings of a TOML file (keys as in ``SETTINGS``)."""
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise WindowsError([f"windows file {path}: not found"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            raise WindowsError([f"windows file {path}: not readable TOML ({exc})"]) from None
        return cls.from_mapping(data, f"windows file {path}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WindowSettings:
        """``COURTSIDE_*`` variables over the ``COURTSIDE_WINDOWS_FILE`` file (when named)."""
        env = os.environ if env is None else env
        base = cls.from_file(env[FILE_VARIABLE]) if env.get(FILE_VARIABLE, "").strip() else cls()
        return base.override({name: env.get(var) for name, var in SETTINGS.items()})

    def override(self, values: Mapping[str, str | None]) -> WindowSettings:
        """These settings with ``values`` (name -> text) replacing them where given and not empty."""
        return replace(self, **{k: str(v).strip() for k, v in values.items() if v is not None and str(v).strip()})

    def given(self) -> dict[str, str]:
        """The settings that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def environment(self) -> dict[str, str]:
        """The environment variables that carry these settings to child processes."""
        return {SETTINGS[k]: v for k, v in self.given().items()}

    def resolve(self) -> PipelineWindows:
        """Every window, set or derived, validated (``WindowsError`` lists every problem)."""
        return _resolve(self)


@dataclass(frozen=True)
class PipelineWindows:
    """Every window of the pipeline, resolved. Build with ``WindowSettings(...).resolve()``."""

    train: Seasons
    validation: Seasons
    test: Seasons
    walkforward_from: int
    inplay_train: Seasons
    inplay_validation: Seasons
    inplay_test: Seasons
    replay: Seasons | None = None
    """Explicit replay seasons; None: per source, the test window's matches if any, else all (``replay_mask``)."""
    replay_all: bool = False
    """``replay = all``: every match of every source."""
    derived: frozenset[str] = field(default_factory=frozenset)
    """Names of the settings the rule derived (not set)."""

    # --- the windows each part of the pipeline uses ---

    @property
    def model(self) -> Windows:
        """Train / validation / test of the pre-match models (``model_dataset``, ``test_evaluation``)."""
        return Windows(
            self.train.first,
            self.train.last,
            self.validation.first,
            self.validation.last,
            self.test.first,
            self.test.last,
        )

    @property
    def inplay(self) -> Windows:
        """Train / validation / test of the in-play models."""
        return Windows(
            self.inplay_train.first,
            self.inplay_train.last,
            self.inplay_validation.first,
            self.inplay_validation.last,
            self.inplay_test.first,
            self.inplay_test.last,
        )

    @property
    def walkforward(self) -> Seasons:
        """Seasons the walk-forward predicts and reports."""
        return Seasons(self.walkforward_from, self.test.last)

    @property
    def walkforward_validation(self) -> Seasons:
        """The walk-forward's seasons before the test window: its choices are made there."""
        return Seasons(self.walkforward_from, self.test.first - 1)

    @property
    def backtest_validation(self) -> Seasons:
        """Where the pre-match backtest chooses its thresholds (the walk-forward's validation seasons)."""
        return self.walkforward_validation

    @property
    def backtest_test(self) -> Seasons:
        """Where the pre-match backtest is scored once (the test window)."""
        return self.test

    def walkforward_seasons(self) -> dict[str, int]:
        """The season arguments of ``training.walkforward.WalkForward``."""
        return {
            "train_start": self.train.first,
            "first_season": self.walkforward_from,
            "last_season": self.test.last,
            "test_start": self.test.first,
        }

    def replay_rule(self) -> str:
        if self.replay_all:
            return "all seasons"
        if self.replay is not None:
            return str(self.replay)
        return f"the test window ({self.test}) where a source has matches there, else all its seasons"

    def replay_mask(self, catalog: pd.DataFrame) -> tuple[pd.Series, dict[str, str]]:
        """Which catalog matches are replayed (``source``, ``season`` columns), and per source the seasons."""
        if self.replay_all:
            mask = catalog["season"].notna()
        elif self.replay is not None:
            mask = self.replay.mask(catalog["season"])
        else:
            in_test = self.test.mask(catalog["season"])
            with_test = set(catalog.loc[in_test, "source"])
            mask = in_test | ~catalog["source"].isin(with_test)
        chosen = catalog.loc[mask]
        seasons = {str(s): compact(int(x) for x in g["season"]) for s, g in chosen.groupby("source")}
        return mask, seasons

    def model_splits(self) -> dict[str, Seasons]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def walkforward_splits(self) -> dict[str, Seasons]:
        return {"validation": self.walkforward_validation, "test": self.test}

    def inplay_splits(self) -> dict[str, Seasons]:
        return {"train": self.inplay_train, "validation": self.inplay_validation, "test": self.inplay_test}

    def check_table(self, frame: pd.DataFrame, asset: str, splits: Mapping[str, Seasons]) -> None:
        """Raise ``WindowsError`` when ``frame`` (``split``, ``season``) was made with other windows than these
        (a table materialized before the windows changed), naming the split and its seasons."""
        problems = []
        for split, seasons in frame.groupby("split")["season"]:
            window = splits.get(str(split))
            outside = sorted(
                {int(x) for x in seasons} if window is None else {int(x) for x in seasons[~window.mask(seasons)]}
            )
            if outside:
                problems.append(
                    f"{asset} has {split} rows of {compact(outside)}, outside the {split} seasons "
                    f"{window if window is not None else '(none)'} of these windows: it was made with "
                    f"other windows; materialize {asset} again"
                )
        if problems:
            raise WindowsError(problems)

    def window_of(self, season: pd.Series) -> pd.Series:
        """Each season's pre-match window (``train`` / ``validation`` / ``test``, None outside them)."""
        return self.model.split_of(season)

    # --- how the windows are recorded (reports, metadata, MLflow) ---

    def as_dict(self) -> dict[str, str]:
        """Every window, as text (asset metadata, MLflow tags as ``windows.<name>``)."""
        return {
            "train": str(self.train),
            "validation": str(self.validation),
            "test": str(self.test),
            "walkforward": str(self.walkforward),
            "walkforward_validation": str(self.walkforward_validation),
            "backtest_validation": str(self.backtest_validation),
            "backtest_test": str(self.backtest_test),
            "inplay_train": str(self.inplay_train),
            "inplay_validation": str(self.inplay_validation),
            "inplay_test": str(self.inplay_test),
            "inplay_prior": f"walk-forward {self.walkforward}",
            "replay": self.replay_rule(),
            "derived": ",".join(sorted(self.derived)) or "none",
        }

    def tags(self) -> dict[str, str]:
        """MLflow tags recording the windows of a run."""
        return {f"windows.{k}": v for k, v in self.as_dict().items()}

    def markdown(self) -> str:
        """One line for the top of a report."""
        return (
            f"*Windows*: train {self.train}, validation {self.validation}, test {self.test}; walk-forward "
            f"{self.walkforward} (validation {self.walkforward_validation}); pre-match backtest thresholds "
            f"on {self.backtest_validation}, scored on {self.backtest_test}; in-play train {self.inplay_train}, "
            f"validation {self.inplay_validation}, test {self.inplay_test} (prior: the walk-forward's); "
            f"replay: {self.replay_rule()}."
        )

    def tag_runs(self, run_ids: Iterable[str], extra: Mapping[str, str] | None = None) -> None:
        """Record the windows (and ``extra`` tags) as tags of existing MLflow runs (runs a training function
        created)."""
        from mlflow import MlflowClient
        from mlflow.entities import RunTag

        client = MlflowClient()
        tags = [RunTag(k, v) for k, v in {**self.tags(), **(extra or {})}.items()]
        for run_id in run_ids:
            client.log_batch(run_id, tags=tags)


def missing_seasons(
    name: str, window: Seasons, present: Iterable[int], what: str, where: str = "the data"
) -> str | None:
    """The problem when seasons of ``window`` have no ``what`` (``present``: the seasons that do), else None."""
    have = {int(s) for s in present}
    missing = [s for s in window.seasons() if s not in have]
    if not missing:
        return None
    return f"{label(name)} seasons {window}: no {what} for {compact(missing)} in {where} (it has {compact(have)})"


def require_seasons(name: str, window: Seasons, present: Iterable[int], what: str) -> None:
    """Raise ``WindowsError`` when seasons of ``window`` have no ``what`` (checked again inside the pipeline,
    where the windows may come from the Dagster launchpad)."""
    problem = missing_seasons(name, window, present, what)
    if problem:
        raise WindowsError([problem])


DEFAULT_WINDOWS_SETTINGS = WindowSettings()


def _resolve(s: WindowSettings) -> PipelineWindows:
    problems: list[str] = []

    def parse(name: str, text: str | None, default: Seasons | None) -> Seasons | None:
        if text is None:
            return default
        try:
            return Seasons.parse(text, name)
        except WindowsError as exc:
            problems.extend(exc.problems)
            return None

    derived = {name for name in SETTINGS if getattr(s, name) is None}
    test = parse("test", s.test, Seasons(*TEST))
    validation = parse(
        "validation", s.validation, None if test is None else Seasons(test.first - VALIDATION_LENGTH, test.first - 1)
    )
    train = parse(
        "train",
        s.train,
        None if validation is None or test is None else Seasons(TRAIN_FROM, min(validation.first, test.first) - 1),
    )
    inplay = [
        parse("inplay_train", s.inplay_train, Seasons(INPLAY_WINDOWS.train_start, INPLAY_WINDOWS.train_end)),
        parse(
            "inplay_validation",
            s.inplay_validation,
            Seasons(INPLAY_WINDOWS.validation_start, INPLAY_WINDOWS.validation_end),
        ),
        parse("inplay_test", s.inplay_test, Seasons(INPLAY_WINDOWS.test_start, INPLAY_WINDOWS.test_end)),
    ]
    replay_all = s.replay is not None and s.replay.strip().lower() == ALL
    replay = None if s.replay is None or replay_all else parse("replay", s.replay, None)
    walkforward_from: int | None = None
    if s.walkforward_from is not None:
        if re.fullmatch(r"\s*\d{4}\s*", s.walkforward_from):
            walkforward_from = int(s.walkforward_from)
        else:
            problems.append(f"walk-forward from {s.walkforward_from!r}: not a season (write e.g. 2011)")
    elif validation is not None:
        walkforward_from = min(WALKFORWARD_FROM, validation.first)

    why = {
        "train": f"derived: {TRAIN_FROM} up to the season before validation; set {flag('train')} or move "
        f"the test window later",
        "validation": f"derived: the season before the test window; set {flag('validation')}",
    }
    named = {
        "train": train,
        "validation": validation,
        "test": test,
        "inplay_train": inplay[0],
        "inplay_validation": inplay[1],
        "inplay_test": inplay[2],
        "replay": replay,
    }
    for name, window in named.items():
        if window is None or not window.empty:
            continue
        if name in derived:
            problems.append(f"{label(name)} seasons {window.first}-{window.last} are empty ({why.get(name, '')})")
        else:
            problems.append(
                f"{label(name)} seasons {window.first}-{window.last}: reversed range "
                f"({window.first} is after {window.last})"
            )

    def ordered(names: tuple[str, str, str]) -> None:
        ws = [(n, named[n]) for n in names]
        for i, (a, wa) in enumerate(ws):
            for b, wb in ws[i + 1 :]:
                if wa is None or wb is None or wa.empty or wb.empty:
                    continue
                both = wa.common(wb)
                if not both.empty:
                    problems.append(f"{label(a)} seasons {wa} and {label(b)} seasons {wb} overlap in {both}")
                elif wa.first > wb.last:
                    problems.append(f"{label(a)} seasons {wa} must come before {label(b)} seasons {wb}")

    ordered(("train", "validation", "test"))
    ordered(("inplay_train", "inplay_validation", "inplay_test"))

    if walkforward_from is not None and test is not None and not test.empty:
        if walkforward_from >= test.first:
            problems.append(
                f"walk-forward seasons {walkforward_from}-{test.last}: no validation seasons before "
                f"the test window {test} (set {flag('walkforward_from')} before {test.first})"
            )
        elif train is not None and not train.empty and walkforward_from - WALKFORWARD_WARMUP <= train.first:
            problems.append(
                f"walk-forward from {walkforward_from}: its {WALKFORWARD_WARMUP} warm-up seasons "
                f"({walkforward_from - WALKFORWARD_WARMUP}-{walkforward_from - 1}) need training "
                f"seasons before them, and training starts in {train.first} (set "
                f"{flag('walkforward_from')} to {train.first + WALKFORWARD_WARMUP + 1} or later)"
            )
        else:
            predicted = Seasons(walkforward_from, test.last)
            for name, window in zip(("inplay_train", "inplay_validation", "inplay_test"), inplay, strict=True):
                if window is None or window.empty:
                    continue
                outside = [x for x in window.seasons() if x not in predicted]
                if outside:
                    problems.append(
                        f"{label(name)} seasons {window}: no out-of-sample pre-match prior for "
                        f"{compact(outside)} (the walk-forward predicts {predicted}, from "
                        f"{flag('walkforward_from')} to the end of the test window); move the "
                        f"in-play windows, the test window or the walk-forward start"
                    )
    if problems:
        raise WindowsError(problems)
    assert train and validation and test and walkforward_from is not None and all(inplay)
    return PipelineWindows(
        train,
        validation,
        test,
        walkforward_from,
        inplay[0],
        inplay[1],
        inplay[2],  # type: ignore[arg-type]
        replay,
        replay_all,
        frozenset(derived),
    )


DEFAULT_WINDOWS = DEFAULT_WINDOWS_SETTINGS.resolve()
"""The windows when nothing is set."""


# --- seasons with data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSeasons:
    """Seasons a data source has: ATP tour-level results, point-by-point sequences, Grand Slam point logs."""

    results: frozenset[int]
    pbp: frozenset[int]
    slam: frozenset[int]


def data_seasons(source: DataSource) -> DataSeasons:
    """What a local data folder holds (file years; the point-by-point archives' match dates)."""
    import pandas as pd

    results = frozenset(f.year for f in source.files("atp_matches") if f.year is not None)
    slam = frozenset(f.year for f in source.files("slam_matches") if f.year is not None)
    pbp: set[int] = set()
    for f in source.files("pbp_matches"):
        dates = pd.read_csv(io.BytesIO(source.read(f)), usecols=["date"])["date"]
        years = pd.to_datetime(dates, format="%d %b %y", errors="coerce").dt.year.dropna()
        pbp |= {int(y) for y in years.unique()}
    return DataSeasons(results, frozenset(pbp), slam)


def check_data(windows: PipelineWindows, have: DataSeasons, where: str) -> None:
    """Raise ``WindowsError`` naming every window with seasons the data lacks."""
    problems: list[str] = []

    def need(name: str, window: Seasons, present: frozenset[int], what: str) -> None:
        problem = missing_seasons(name, window, present, what, where)
        if problem:
            problems.append(problem)

    for name in ("train", "validation", "test"):
        need(name, getattr(windows, name), have.results, "ATP results")
    need(
        "walkforward",
        Seasons(windows.walkforward_from - WALKFORWARD_WARMUP, windows.test.first - 1),
        have.results,
        "ATP results",
    )  # with its warm-up folds; the test window is checked above
    for name in ("inplay_train", "inplay_validation", "inplay_test"):
        need(name, getattr(windows, name), have.pbp, "point-by-point matches")
    if windows.replay is not None:
        need("replay", windows.replay, have.pbp | have.slam, "point-level matches (point-by-point or Grand Slam)")
    if problems:
        raise WindowsError(problems)
