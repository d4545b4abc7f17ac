"""The runner: typed frozen results, failing rows with their source, plain values, lazy GX."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from expectations.runner import validate
from expectations.suites import between, differ, in_set, row_count, unique


def frame(n: int = 12) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "match_id": pd.array([f"m{i}" for i in range(n)], dtype="str"),
            "rank": pd.array([i + 1 for i in range(n)], dtype="Int64"),
            "winner": pd.array([1, 2] * (n // 2), dtype="Int64"),
            "loser": pd.array([2, 1] * (n // 2), dtype="Int64"),
            "day": pd.date_range("2020-01-01", periods=n).astype("datetime64[us]"),
            "source_file": pd.Categorical(["a.csv"] * n),
            "source_line": np.arange(n, dtype="int64") + 2,
        }
    )


def test_importing_the_package_imports_neither_gx_nor_dagster() -> None:
    code = (
        "import sys, expectations.runner, expectations.suites, expectations.propose_errata; "
        "print(sorted(m for m in ('great_expectations', 'dagster') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_result_is_typed_frozen_and_in_suite_order() -> None:
    data = frame()
    expectations = [
        row_count(1, 100),
        between("rank_at_least_1", "rank", 1),
        in_set("winner_is_1_or_2", "winner", [1, 2]),
        differ("winner_differs_from_loser", "winner", "loser", reason="same"),
    ]
    result = validate(data, "toy", expectations, context_columns=["match_id"])
    assert result.success
    assert result.suite_name == "toy" and result.evaluated_rows == 12
    assert [e.name for e in result.expectations] == [
        "row_count_plausible",
        "rank_at_least_1",
        "winner_is_1_or_2",
        "winner_differs_from_loser",
    ]
    assert result.outcome("winner_differs_from_loser").columns == ("winner", "loser")
    assert result.failures == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.success = False  # type: ignore[misc]


def test_examples_show_source_key_and_values_as_plain_python() -> None:
    data = frame()
    data.loc[3, "rank"] = -1
    data.loc[[5, 7], "day"] = pd.Timestamp("1900-01-01")
    data = data.set_index("match_id", drop=False)  # any index: failing rows are positions
    result = validate(
        data,
        "toy",
        [
            between("rank_at_least_1", "rank", 1),
            between("day_in_range", "day", pd.Timestamp("2000-01-01").to_pydatetime()),
        ],
        context_columns=["match_id"],
    )
    rank = result.outcome("rank_at_least_1")
    assert not rank.success and rank.unexpected_count == 1
    assert rank.examples == ({"source_file": "a.csv", "source_line": 5, "match_id": "m3", "rank": -1},)
    assert rank.failing_rows == (3,)
    assert rank.observed_value == ((-1, 1),)
    day = result.outcome("day_in_range")
    assert [x["day"] for x in day.examples] == ["1900-01-01", "1900-01-01"]
    json.dumps([dataclasses.asdict(e) for e in result.expectations])  # metadata-ready


def test_examples_are_capped_but_all_failing_rows_can_be_collected() -> None:
    data = frame(40)
    data["rank"] = -data["rank"]
    check = [between("rank_at_least_1", "rank", 1)]
    few = validate(data, "toy", check).outcome("rank_at_least_1")
    assert few.unexpected_count == 40 and len(few.examples) == 5
    assert few.unexpected_percent == pytest.approx(100.0)
    every = validate(data, "toy", check, all_failing_rows=True).outcome("rank_at_least_1")
    assert every.failing_rows == tuple(range(40)) and len(every.examples) == 5


def test_big_frames_are_validated_in_narrow_column_groups() -> None:
    data = pd.concat([frame(12)] * 5_000, ignore_index=True)  # 60k rows, above the narrow limit
    data["match_id"] = pd.array([f"m{i}" for i in range(len(data))], dtype="str")
    data.loc[59_999, "loser"] = data.loc[59_999, "winner"]
    result = validate(
        data,
        "toy",
        [
            unique("match_id_unique", ["match_id"]),
            differ("winner_differs_from_loser", "winner", "loser", reason="same"),
            in_set("winner_is_1_or_2", "winner", [1, 2], where=None),
        ],
    )
    assert [f.name for f in result.failures] == ["winner_differs_from_loser"]
    assert result.outcome("winner_differs_from_loser").failing_rows == (59_999,)


def test_a_missing_column_fails_with_an_error_instead_of_raising() -> None:
    result = validate(frame(), "toy", [between("height_plausible", "height", 150, 230)])
    outcome = result.outcome("height_plausible")
    assert not outcome.success and outcome.error
    assert "error:" in result.summary_markdown()
