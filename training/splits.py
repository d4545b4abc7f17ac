"""Time windows for training, validation and test, and the rows each window holds.

Windows are seasons (the year in Sackmann's ``tourney_id``), set by configuration and never
hard-coded to the data at hand: the same pipeline runs unchanged on later data.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Windows:
    """Season ranges (inclusive) of each split."""

    train_start: int = 1991
    """First season used for training (rankings are sparse before the ATP computer era)."""
    train_end: int = 2017
    """Last training season."""
    validation_start: int = 2018
    validation_end: int = 2018
    test_start: int = 2019
    test_end: int = 2021

    def __post_init__(self) -> None:
        if not (
            self.train_start
            <= self.train_end
            < self.validation_start
            <= self.validation_end
            < self.test_start
            <= self.test_end
        ):
            raise ValueError(f"windows must be ordered train < validation < test: {self}")

    def split_of(self, season: pd.Series) -> pd.Series:
        """'train', 'validation', 'test' or None for each season."""
        out = pd.Series(None, index=season.index, dtype=object)
        out[(season >= self.train_start) & (season <= self.train_end)] = "train"
        out[(season >= self.validation_start) & (season <= self.validation_end)] = "validation"
        out[(season >= self.test_start) & (season <= self.test_end)] = "test"
        return out


def modelling_rows(features: pd.DataFrame) -> pd.DataFrame:
    """Rows any pre-match model learns from or is scored on: tour-level main draw, and a result that
    settles (see ``features.matches.settles_with_winner``)."""
    return features[features["is_tour_main"] & features["settles"]].copy()


def model_rows(features: pd.DataFrame, windows: Windows) -> pd.DataFrame:
    """Rows a model learns from or is scored on: tour-level main draw, result that settles (see
    ``features.matches.settles_with_winner``), season inside one of the windows; with a ``split``."""
    rows = modelling_rows(features)
    rows["split"] = windows.split_of(rows["season"])
    return rows[rows["split"].notna()].reset_index(drop=True)
