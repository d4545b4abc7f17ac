"""The season windows (training.windows): one definition, one derivation rule, every problem named with its
window and seasons before any work starts; the command line's options over the environment over the file."""

import os

import pandas as pd
import pytest

from courtside import cli
from courtside.settings import Settings
from feeds.sources import LocalDataSource
from tests.real_data import data_dir
from training.inplay_data import INPLAY_WINDOWS, InplayTrainingConfig
from training.splits import Windows
from training.walkforward import WalkForward
from training.windows import (
    DEFAULT_WINDOWS,
    FILE_VARIABLE,
    SETTINGS,
    DataSeasons,
    Seasons,
    WindowsError,
    WindowSettings,
    check_data,
    data_seasons,
)


def _error(**settings) -> str:
    with pytest.raises(WindowsError) as exc:
        WindowSettings(**settings).resolve()
    return str(exc.value)


@pytest.fixture
def clean_env(monkeypatch):
    """No window variable from the caller's environment; whatever a test exports is undone after it."""
    for var in [*SETTINGS.values(), FILE_VARIABLE]:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_defaults_are_the_windows_the_pipeline_always_used():
    w = DEFAULT_WINDOWS
    assert w.model == Windows() == Windows(1991, 2017, 2018, 2018, 2019, 2021)
    assert w.walkforward_seasons() == {
        "train_start": 1991,
        "first_season": 2011,
        "last_season": 2021,
        "test_start": 2019,
    }
    wf = WalkForward()
    assert (wf.train_start, wf.first_season, wf.last_season, wf.test_start) == (1991, 2011, 2021, 2019)
    assert w.inplay == INPLAY_WINDOWS == InplayTrainingConfig().windows == Windows(2011, 2013, 2014, 2014, 2015, 2015)
    assert (str(w.backtest_validation), str(w.backtest_test)) == ("2011-2018", "2019-2021")
    assert w.replay is None and not w.replay_all


def test_moving_the_test_window_moves_everything_that_depends_on_it():
    w = WindowSettings(test="2015-2016").resolve()
    assert (str(w.train), str(w.validation), str(w.test)) == ("1991-2013", "2014", "2015-2016")
    assert w.walkforward_seasons() == {
        "train_start": 1991,
        "first_season": 2011,
        "last_season": 2016,
        "test_start": 2015,
    }
    assert (str(w.walkforward_validation), str(w.backtest_validation), str(w.backtest_test)) == (
        "2011-2014",
        "2011-2014",
        "2015-2016",
    )
    assert w.as_dict()["inplay_prior"] == "walk-forward 2011-2016"
    assert {"windows.test": "2015-2016", "windows.backtest_test": "2015-2016"}.items() <= w.tags().items()
    assert "test 2015-2016" in w.markdown() and "scored on 2015-2016" in w.markdown()
    later = WindowSettings(test="2022-2023").resolve()  # later data: the same rule, nothing else to change
    assert (str(later.train), str(later.validation), str(later.walkforward)) == ("1991-2020", "2021", "2011-2023")
    early = WindowSettings(
        test="2008-2009", inplay_train="2007", inplay_validation="2008", inplay_test="2009"
    ).resolve()
    assert early.walkforward_from == 2007  # never after the first validation season


def test_set_windows_are_kept_and_gaps_allowed():
    w = WindowSettings(
        train="1995-2012", validation="2014", test="2016-2017", walkforward_from="2010", replay="2013"
    ).resolve()
    assert (str(w.train), str(w.validation), str(w.test), str(w.walkforward)) == (
        "1995-2012",
        "2014",
        "2016-2017",
        "2010-2017",
    )
    assert w.derived == frozenset({"inplay_train", "inplay_validation", "inplay_test"})
    assert WindowSettings(replay="all").resolve().replay_all


def test_replay_is_the_test_window_where_a_source_has_matches_else_all():
    catalog = pd.DataFrame({"source": ["pbp"] * 4 + ["slam"] * 2, "season": [2013, 2014, 2015, 2016, 2012, 2013]})
    mask, seasons = WindowSettings(test="2014-2015").resolve().replay_mask(catalog)
    assert mask.tolist() == [False, True, True, False, True, True]
    assert seasons == {"pbp": "2014-2015", "slam": "2012-2013"}
    mask, seasons = WindowSettings(replay="2013").resolve().replay_mask(catalog)
    assert mask.tolist() == [True, False, False, False, False, True] and seasons == {"pbp": "2013", "slam": "2013"}
    mask, _ = WindowSettings(test="2014-2015", replay="all").resolve().replay_mask(catalog)
    assert mask.all()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"test": "2021-2019"}, "test seasons 2021-2019: reversed range (2021 is after 2019)"),
        ({"replay": "2016-2014"}, "replay seasons 2016-2014: reversed range"),
        ({"test": "2019 to 2021"}, "test seasons '2019 to 2021': not a season range"),
        ({"walkforward_from": "soon"}, "walk-forward from 'soon': not a season"),
        ({"test": "1991"}, "train seasons 1991-1989 are empty (derived: 1991 up to the season before validation"),
        ({"train": "1991-2018"}, "train seasons 1991-2018 and validation seasons 2018 overlap in 2018"),
        ({"validation": "2020"}, "validation seasons 2020 and test seasons 2019-2021 overlap in 2020"),
        (
            {"train": "1991-2010", "validation": "2019", "test": "2015-2016"},
            "validation seasons 2019 must come before test seasons 2015-2016",
        ),
        ({"inplay_test": "2014"}, "in-play validation seasons 2014 and in-play test seasons 2014 overlap in 2014"),
        ({"walkforward_from": "2019"}, "walk-forward seasons 2019-2021: no validation seasons before the test window"),
        (
            {"walkforward_from": "1992"},
            "walk-forward from 1992: its 2 warm-up seasons (1990-1991) need training seasons",
        ),
        (
            {"test": "2013-2014"},
            "in-play test seasons 2015: no out-of-sample pre-match prior for 2015 (the walk-forward predicts 2011-2014",
        ),
        (
            {"inplay_train": "2009-2013"},
            "in-play train seasons 2009-2013: no out-of-sample pre-match prior for 2009-2010",
        ),
    ],
)
def test_unusable_windows_are_refused_with_the_window_and_its_seasons(settings, expected):
    assert expected in _error(**settings)


def test_every_problem_is_listed_at_once():
    message = _error(test="2021-2019", inplay_train="2012", inplay_validation="2012", replay="x")
    assert "test seasons 2021-2019: reversed" in message
    assert "in-play train seasons 2012 and in-play validation seasons 2012 overlap in 2012" in message
    assert "replay seasons 'x': not a season range" in message
    assert message.count("\n  - ") == 3


def test_seasons_without_data_are_named_before_any_work(tmp_path):
    have = data_seasons(LocalDataSource(data_dir()))  # the real shared data
    assert min(have.results) == 1968 and max(have.results) == 2021
    assert have.pbp == frozenset(range(2011, 2016)) and have.slam == frozenset(range(2011, 2015))
    check_data(DEFAULT_WINDOWS, have, "shared")  # the defaults fit the data
    with pytest.raises(WindowsError) as exc:
        check_data(WindowSettings(test="2022-2023").resolve(), have, "shared")
    assert str(exc.value) == (
        "season windows: test seasons 2022-2023: no ATP results for 2022-2023 in shared (it has 1968-2021)"
    )
    with pytest.raises(WindowsError) as exc:
        check_data(
            WindowSettings(
                test="2017-2021",
                inplay_train="2012-2014",
                inplay_validation="2015",
                inplay_test="2016-2017",
                replay="2015-2017",
            ).resolve(),
            have,
            "shared",
        )
    assert (
        "in-play test seasons 2016-2017: no point-by-point matches for 2016-2017 in shared (it has 2011-2015)"
        in str(exc.value)
    )
    assert "replay seasons 2015-2017: no point-level matches (point-by-point or Grand Slam) for 2016-2017" in str(
        exc.value
    )
    gap = DataSeasons(frozenset(range(1968, 2022)) - {2000}, have.pbp, have.slam)
    with pytest.raises(WindowsError, match="train seasons 1991-2017: no ATP results for 2000"):
        check_data(DEFAULT_WINDOWS, gap, "shared")


def test_command_line_over_environment_over_file(tmp_path, clean_env):
    file = tmp_path / "windows.toml"
    file.write_text('test = "2016-2017"\nreplay = "2014"\ninplay_test = 2015\n')
    clean_env.setenv(FILE_VARIABLE, str(file))
    clean_env.setenv("COURTSIDE_REPLAY_SEASONS", "2013")
    w = WindowSettings.from_env().resolve()
    assert (str(w.test), str(w.replay), str(w.validation)) == ("2016-2017", "2013", "2015")
    args = cli.build_parser().parse_args(["pipeline", "--test-seasons", "2015-2016"])
    windows = cli.use_windows(args, Settings.from_env({"COURTSIDE_DATA_DIR": str(data_dir())}))
    assert (str(windows.test), str(windows.replay)) == ("2015-2016", "2013")
    # exported for the pipeline, Dagster and the services
    assert os.environ["COURTSIDE_TEST_SEASONS"] == "2015-2016" and os.environ["COURTSIDE_REPLAY_SEASONS"] == "2013"
    assert WindowSettings.from_env().resolve() == windows
    file.write_text('tset = "2016"\n')
    with pytest.raises(WindowsError, match=r"windows file .*: unknown window settings \['tset'\]"):
        WindowSettings.from_env()
    with pytest.raises(WindowsError, match="windows file .*missing.toml: not found"):
        WindowSettings.from_env({FILE_VARIABLE: str(tmp_path / "missing.toml")})


@pytest.mark.parametrize("command", ["pipeline", "up"])
def test_the_cli_refuses_unusable_windows_before_starting_anything(command, clean_env, capsys):
    def started(*_, **__):
        raise AssertionError("work started despite unusable windows")

    clean_env.setattr(cli, "run_pipeline", started)
    clean_env.setattr(cli, "prepare_environment", started)
    clean_env.setattr(cli.signal, "signal", lambda *_: None)
    clean_env.setenv("COURTSIDE_DATA_DIR", str(data_dir()))
    assert cli.main([command, "--test-seasons", "2022-2023", "--inplay-test-seasons", "2014"]) == 2
    err = capsys.readouterr().err
    assert "refusing to start: season windows:" in err
    assert "in-play validation seasons 2014 and in-play test seasons 2014 overlap in 2014" in err
    assert "COURTSIDE_TEST_SEASONS" not in os.environ  # nothing exported either
    assert cli.main([command, "--test-seasons", "2022-2023"]) == 2
    assert "test seasons 2022-2023: no ATP results for 2022-2023" in capsys.readouterr().err


def test_courtside_windows_prints_every_window(clean_env, capsys):
    clean_env.setenv("COURTSIDE_DATA_DIR", str(data_dir()))
    assert cli.main(["windows", "--test-seasons", "2015-2016", "--walkforward-from", "2010"]) == 0
    out = capsys.readouterr().out
    assert "walkforward             2010-2016" in out and "backtest_test           2015-2016" in out


def test_seasons_text():
    assert str(Seasons(2019, 2021)) == "2019-2021" and str(Seasons(2018, 2018)) == "2018"
    assert Seasons.parse(" 2019 - 2021 ", "test") == Seasons(2019, 2021)
    assert Seasons.parse(2018, "x") == Seasons(2018, 2018)
