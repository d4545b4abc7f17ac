"""Great Expectations suites for the historical datasets: one function per dataset, plain Python.

Each suite checks what ``feeds.historical`` cannot judge while parsing: the column set and types,
plausible ranges, allowed values, keys, consistency between columns and the row count. Every
expectation carries a stable human name (``meta['name']``, used for asset checks and reports) and a
``reason`` template (``str.format`` over the failing row's values) that says in words why a row
fails; for duplicates, ``{first[...]}`` refers to the first copy. Known upstream defects are not let
through here: they are listed in ``feeds/errata.csv`` (see ``expectations.propose_errata``) and set
aside by the ingest, so a new defect of the same kind still fails.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from expectations.runner import SOURCE_COLUMNS, SuiteResult, validate
from features.ratings import SURFACES
from feeds.historical import SPECS
from feeds.sources import SLAMS

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

FIRST_TOURNEY_DATE = dt.datetime(1967, 12, 1)
"""Before the open era's first season: the 1968 files open with Bombay and Calcutta, whose
``tourney_date`` is 1967-12-28."""
FAR_FUTURE = dt.datetime(2100, 1, 1)
EXCHANGE_MIN_PRICE = 1.01
"""The smallest decimal price an exchange accepts: a lower 'price' cannot be bet and is an error."""
EXCHANGE_MAX_PRICE = 1001.0
"""Just above the exchange maximum of 1000 (a higher 'price' is an error too)."""

ROUNDS = ("R128", "R64", "R32", "R16", "QF", "SF", "F", "RR", "BR", "ER", "Q1", "Q2", "Q3", "Q4")
ROUND_ROBIN = "RR"
TOURNEY_LEVELS = ("G", "M", "A", "C", "S", "F", "D", "O")
"""Sackmann's levels: Grand Slam, Masters, other tour, Challenger, Satellite/ITF, Finals,
Davis Cup, Olympics."""
WTA_LEVELS = ("G", "P", "PM", "I", "W", "D", "F", "O", "E", "J", "CC", "T1", "T2", "T3", "T4", "T5")
"""The WTA's levels in Sackmann's files: Grand Slam, Premier (Mandatory), International, the ITF-level events
(W), Fed/BJK Cup, the Finals, Olympics, exhibitions, the Tier I-V of 1988-2008 and the lower tiers."""
HANDS = ("R", "L", "U", "A")
ODDS_ROUNDS = (
    "1st Round",
    "2nd Round",
    "3rd Round",
    "4th Round",
    "Quarterfinals",
    "Semifinals",
    "The Final",
    "Round Robin",
)
ODDS_SERIES = (
    "ATP250",
    "ATP500",
    "Masters 1000",
    "Grand Slam",
    "Masters Cup",
    "International",
    "International Gold",
    "Masters",
)
SLAM_TOURNAMENTS = ("Australian Open", "French Open", "Wimbledon", "US Open")
SLAM_COMMENTS = ("Completed", "Retired", "Walkover", "Disqualified", "Awarded", "Sched", "NSY")
PBP_POINTS = r"^[SRAD;./]+$"
"""S server won, R returner won, A ace, D double fault; ``;`` game, ``.`` set, ``/`` tie-break
change of server."""

HEIGHT_CM = (150, 230)
WTA_HEIGHT_CM = (140, 210)
"""Women's tour: players of 145-147 cm have played (and 200 cm)."""
AGE_YEARS = (13, 70)
MATCH_MINUTES = (0, 700)
"""The longest match on record (Isner-Mahut, Wimbledon 2010) lasted 665 minutes."""

_SERVE_STATS = tuple(
    f"{side}_{s}"
    for side in "wl"
    for s in ("ace", "df", "svpt", "1stIn", "1stWon", "2ndWon", "SvGms", "bpSaved", "bpFaced")
)

EXTRA_SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "odds_slams": (
        "EXW",
        "EXL",
        "LBW",
        "LBL",
        "SJW",
        "SJL",
        "UBW",
        "UBL",
        "CBW",
        "CBL",
        "IWW",
        "IWL",
        "B&WW",
        "B&WL",
        "SBW",
        "SBL",
        "GBW",
        "GBL",
    ),
    "slam_points": (
        "P1Momentum",
        "P2Momentum",
        "P1PointsWon",
        "P2PointsWon",
        "P1Winner",
        "P2Winner",
        "P1UnfErr",
        "P2UnfErr",
        "P1NetPoint",
        "P2NetPoint",
        "P1NetPointWon",
        "P2NetPointWon",
        "P1BreakPoint",
        "P2BreakPoint",
        "P1BreakPointWon",
        "P2BreakPointWon",
        "P1FirstSrvIn",
        "P2FirstSrvIn",
        "P1FirstSrvWon",
        "P2FirstSrvWon",
        "P1SecondSrvIn",
        "P2SecondSrvIn",
        "P1SecondSrvWon",
        "P2SecondSrvWon",
        "P1ForcedError",
        "P2ForcedError",
        "History",
        "Speed_MPH",
        "P1BreakPointMissed",
        "P2BreakPointMissed",
        "Serve_Direction",
        "Winner_FH",
        "Winner_BH",
        "ServingTo",
        "P1TurningPoint",
        "P2TurningPoint",
        "ServeNumber",
        "WinnerType",
        "WinnerShotType",
    ),
}
"""Source columns beyond ``SPECS`` (kept as text by the ingest)."""

OPEN_LAYOUT = frozenset({"odds_slams", "wta_odds_slams", "slam_points"})
"""Datasets whose upstream files add columns over the years (tennis-data adds and drops
bookmakers, Sackmann's slam files gained point details): there the source columns must all be
present, and more are allowed."""

RowBounds = tuple[int, int]
"""Plausible (lowest, highest) number of rows of a dataset."""

_GX_TYPES = {"str": "str", "int": "Int64", "float": "float64", "date": "datetime64"}


def _gxe() -> Any:
    import great_expectations.expectations as gxe  # imported late: GX takes seconds to import

    return gxe


def snake(column: str) -> str:
    """A column name as a piece of an expectation name (``Best of`` -> ``best_of``)."""
    return re.sub(r"\W+", "_", column).strip("_").lower()


def _meta(name: str, reason: str | None) -> dict[str, str]:
    return {"name": name, "reason": reason} if reason else {"name": name}


# --- building blocks ----------------------------------------------------------------------------


def between(
    name: str, column: str, low: Any = None, high: Any = None, *, reason: str | None = None, where: Any = None
) -> Expectation:
    """Values of ``column``, when present, lie in [low, high]."""
    span = f"{'' if low is None else low}..{'' if high is None else high}"
    return _gxe().ExpectColumnValuesToBeBetween(
        column=column,
        min_value=low,
        max_value=high,
        row_condition=where,
        meta=_meta(name, reason or f"{column} {{{column}}} outside {span}"),
    )


def in_set(
    name: str, column: str, values: Sequence[Any], *, reason: str | None = None, where: Any = None
) -> Expectation:
    """Values of ``column``, when present, are among ``values``."""
    shown = ", ".join(map(str, values))
    return _gxe().ExpectColumnValuesToBeInSet(
        column=column,
        value_set=list(values),
        row_condition=where,
        meta=_meta(name, reason or f"{column} {{{column}}} not one of {shown}"),
    )


def matches(name: str, column: str, regex: str, *, reason: str | None = None) -> Expectation:
    """Values of ``column``, when present, match ``regex``."""
    return _gxe().ExpectColumnValuesToMatchRegex(
        column=column, regex=regex, meta=_meta(name, reason or f"{column} {{{column}!r}} does not match {regex}")
    )


def present(column: str) -> Expectation:
    """Every row has a value in ``column``."""
    return _gxe().ExpectColumnValuesToNotBeNull(
        column=column, meta=_meta(f"{snake(column)}_present", f"{column} is missing")
    )


def unique(name: str, columns: Sequence[str], *, reason: str | None = None, where: Any = None) -> Expectation:
    """No two rows share the values of ``columns`` (all copies of a duplicate fail)."""
    reason = reason or (f"duplicate of line {{first[source_line]}} (same {', '.join(columns)})")
    if len(columns) == 1:
        return _gxe().ExpectColumnValuesToBeUnique(column=columns[0], row_condition=where, meta=_meta(name, reason))
    return _gxe().ExpectCompoundColumnsToBeUnique(
        column_list=list(columns), row_condition=where, meta=_meta(name, reason)
    )


def differ(name: str, column_a: str, column_b: str, *, reason: str) -> Expectation:
    """Within each row ``column_a`` and ``column_b`` differ.

    Written as "among the rows where a equals b, a must be missing", i.e. no such row exists: GX's
    own ``ExpectSelectColumnValuesToBeUniqueWithinRecord`` compares row by row in Python
    (8 s on 186k rows), this takes milliseconds and still lists the failing rows.
    """
    return _gxe().ExpectColumnValuesToBeNull(
        column=column_a, row_condition=_condition(f"`{column_a}` == `{column_b}`"), meta=_meta(name, reason)
    )


def row_count(low: int, high: int) -> Expectation:
    """The number of rows is plausible: a truncated or missing file makes it too small."""
    return _gxe().ExpectTableRowCountToBeBetween(min_value=low, max_value=high, meta=_meta("row_count_plausible", None))


def schema(dataset: str) -> list[Expectation]:
    """The source's column set, the type of every spec column and the required values."""
    spec = SPECS[dataset]
    gxe = _gxe()
    names = [*spec.names, *EXTRA_SOURCE_COLUMNS.get(dataset, ()), *SOURCE_COLUMNS]
    exact = dataset not in OPEN_LAYOUT
    out: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=names,
            exact_match=exact,
            meta=_meta("columns_match_source" if exact else "columns_include_source", None),
        )
    ]
    out += [
        gxe.ExpectColumnTypeToBe(
            column=c.name, type_=_GX_TYPES[c.kind], meta=_meta(f"{snake(c.name)}_is_{c.kind}", None)
        )
        for c in spec.columns
    ]
    out += [present(c.name) for c in spec.columns if c.required]
    out += [present(c) for c in SOURCE_COLUMNS]
    return out


def _condition(text: str) -> Any:
    """A pandas ``DataFrame.query`` row condition (GX's Condition objects cannot compare two
    columns)."""
    from great_expectations.expectations.row_conditions import PassThroughCondition

    return PassThroughCondition(pass_through_filter=text)


def _column(name: str) -> Any:
    from great_expectations.expectations.row_conditions import Column

    return Column(name)


# --- suites -------------------------------------------------------------------------------------


def _sackmann_matches(
    dataset: str, rows: RowBounds, levels: Sequence[str] = TOURNEY_LEVELS, heights: tuple[int, int] = HEIGHT_CM
) -> list[Expectation]:
    out = [
        *schema(dataset),
        row_count(*rows),
        unique(
            "match_key_unique",
            ["tourney_id", "match_num"],
            reason="match {tourney_id}:{match_num} listed more than once (first at line "
            "{first[source_line]} of {first[source_file]}); an erratum on the key "
            "sets every copy aside",
        ),
        unique(
            "pairing_unique_per_round",
            ["tourney_id", "round", "winner_id", "loser_id"],
            where=_column("round") != ROUND_ROBIN,
            reason="duplicate of match {first[tourney_id]}:{first[match_num]} "
            "(same round {round} and players {winner_id} vs {loser_id})",
        ),
        differ(
            "winner_differs_from_loser",
            "winner_id",
            "loser_id",
            reason="winner_id equals loser_id: player {winner_id} '{winner_name}' recorded as playing himself",
        ),
        between("match_num_non_negative", "match_num", 0),
        between(
            "tourney_date_in_range",
            "tourney_date",
            FIRST_TOURNEY_DATE,
            FAR_FUTURE,
            reason="tourney_date {tourney_date} outside 1967-12-01..2100-01-01",
        ),
        in_set("best_of_allowed", "best_of", [1, 3, 5]),
        in_set("round_known", "round", ROUNDS),
        in_set("surface_known", "surface", SURFACES),
        in_set("tourney_level_known", "tourney_level", levels),
        between(
            "minutes_plausible",
            "minutes",
            *MATCH_MINUTES,
            reason="minutes {minutes} outside the plausible range 0-700 (the longest match on record lasted 665)",
        ),
    ]
    for side in ("winner", "loser"):
        out += [
            between(f"{side}_id_positive", f"{side}_id", 1),
            between(f"{side}_rank_at_least_1", f"{side}_rank", 1, reason=f"{side}_rank {{{side}_rank}} below 1"),
            between(
                f"{side}_rank_points_non_negative",
                f"{side}_rank_points",
                0,
                reason=f"{side}_rank_points {{{side}_rank_points}} is negative",
            ),
            between(
                f"{side}_age_plausible",
                f"{side}_age",
                *AGE_YEARS,
                reason=f"{side}_age {{{side}_age}} outside the plausible range 13-70 years ({{{side}_name}})",
            ),
            between(
                f"{side}_ht_plausible",
                f"{side}_ht",
                *heights,
                reason=f"{side}_ht {{{side}_ht}} cm outside the plausible range {heights[0]}-{heights[1]} cm "
                f"({{{side}_name}})",
            ),
            in_set(f"{side}_hand_known", f"{side}_hand", HANDS),
        ]
    out += [between(f"{snake(s)}_non_negative", s, 0, reason=f"{s} {{{s}}} is negative") for s in _SERVE_STATS]
    return out


def atp_matches(row_bounds: RowBounds = (180_000, 400_000)) -> list[Expectation]:
    """Tour-level main-draw results (Sackmann)."""
    return _sackmann_matches("atp_matches", row_bounds)


def atp_matches_qual_chall(row_bounds: RowBounds = (185_000, 450_000)) -> list[Expectation]:
    """Qualifying and Challenger results (Sackmann)."""
    return _sackmann_matches("atp_matches_qual_chall", row_bounds)


def wta_matches(row_bounds: RowBounds = (120_000, 400_000)) -> list[Expectation]:
    """WTA tour-level main-draw results (Sackmann)."""
    return _sackmann_matches("wta_matches", row_bounds, WTA_LEVELS, WTA_HEIGHT_CM)


def atp_players(row_bounds: RowBounds = (60_000, 200_000)) -> list[Expectation]:
    """The player register (Sackmann)."""
    return _players("atp_players", row_bounds)


def wta_players(row_bounds: RowBounds = (50_000, 200_000)) -> list[Expectation]:
    """The WTA player register (Sackmann)."""
    return _players("wta_players", row_bounds, WTA_HEIGHT_CM)


def _players(dataset: str, row_bounds: RowBounds, heights: tuple[int, int] = HEIGHT_CM) -> list[Expectation]:
    return [
        *schema(dataset),
        row_count(*row_bounds),
        unique(
            "player_id_unique",
            ["player_id"],
            reason="player_id {player_id} listed twice: same id as line {first[source_line]}",
        ),
        between("player_id_in_range", "player_id", 100_000, 999_999),
        in_set("hand_known", "hand", HANDS),
        between(
            "height_plausible",
            "height",
            *heights,
            reason=f"height {{height}} cm outside the plausible range {heights[0]}-{heights[1]} cm "
            "({name_first} {name_last})",
        ),
        matches(
            "dob_is_yyyymmdd",
            "dob",
            r"^(?:18|19|20)\d\d(?:0\d|1[0-2])(?:[0-2]\d|3[01])$",
            reason="dob {dob!r} is not YYYYMMDD (or YYYY0000)",
        ),
    ]


def _price_limits(column: str, bookmaker: str) -> list[Expectation]:
    label = f"{bookmaker} price {column}"
    return [
        between(
            f"{snake(column)}_not_below_exchange_minimum",
            column,
            EXCHANGE_MIN_PRICE,
            reason=f"{label} {{{column}}} below the exchange minimum {EXCHANGE_MIN_PRICE}",
        ),
        between(
            f"{snake(column)}_not_above_exchange_maximum",
            column,
            None,
            EXCHANGE_MAX_PRICE,
            reason=f"{label} {{{column}}} above the exchange maximum 1000",
        ),
    ]


def _odds_common(rows: RowBounds) -> list[Expectation]:
    return [
        row_count(*rows),
        between(
            "date_in_range",
            "Date",
            dt.datetime(2000, 1, 1),
            FAR_FUTURE,
            reason="Date {Date} outside 2000-01-01..2100-01-01",
        ),
        in_set("best_of_allowed", "Best of", [3, 5]),
        in_set("round_known", "Round", ODDS_ROUNDS),
        in_set("surface_known", "Surface", SURFACES),
        in_set("court_known", "Court", ("Indoor", "Outdoor")),
    ]


def odds_tour(row_bounds: RowBounds = (20_000, 80_000)) -> list[Expectation]:
    """Bet365 closing odds of all ATP tour-level matches (tennis-data layout, Player_1/Player_2)."""
    return [
        *schema("odds_tour"),
        *_odds_common(row_bounds),
        unique(
            "match_key_unique",
            ["Date", "Player_1", "Player_2"],
            reason="duplicate of line {first[source_line]} (same Date and players)",
        ),
        differ("players_differ", "Player_1", "Player_2", reason="Player_1 equals Player_2 ({Player_1})"),
        # Rows whose Winner is not Player_2 must have Player_1 as Winner.
        _gxe().ExpectColumnPairValuesToBeEqual(
            column_A="Winner",
            column_B="Player_1",
            row_condition=_condition("`Winner` != `Player_2`"),
            meta=_meta(
                "winner_is_player_1_or_2", "Winner {Winner} is neither Player_1 {Player_1} nor Player_2 {Player_2}"
            ),
        ),
        in_set("series_known", "Series", ODDS_SERIES),
        *_price_limits("Odd_1", "Bet365"),
        *_price_limits("Odd_2", "Bet365"),
        *[between(f"{snake(c)}_at_least_1", c, 1) for c in ("Rank_1", "Rank_2")],
        *[between(f"{snake(c)}_non_negative", c, 0) for c in ("Pts_1", "Pts_2")],
    ]


def odds_slams(row_bounds: RowBounds = (10_500, 40_000)) -> list[Expectation]:
    """Grand Slam closing odds of several bookmakers (tennis-data layout, Winner/Loser)."""
    return _slam_odds("odds_slams", row_bounds, "Series", sets=5)


def wta_odds_slams(row_bounds: RowBounds = (5_000, 40_000)) -> list[Expectation]:
    """WTA Grand Slam closing odds (tennis-data layout, ``Tier`` instead of ``Series``, best of 3)."""
    return _slam_odds("wta_odds_slams", row_bounds, "Tier", sets=3)


def _slam_odds(dataset: str, row_bounds: RowBounds, level: str, sets: int) -> list[Expectation]:
    bookmakers = {"B365": "Bet365", "PS": "Pinnacle", "Max": "best market", "Avg": "average market"}
    games = [f"{s}{i}" for i in range(1, sets + 1) for s in "WL"]
    most = sets // 2 + 1
    return [
        *schema(dataset),
        *_odds_common(row_bounds),
        unique(
            "match_key_unique",
            ["Date", "Winner", "Loser"],
            reason="duplicate of line {first[source_line]} (same Date, Winner and Loser)",
        ),
        differ("winner_differs_from_loser", "Winner", "Loser", reason="Winner equals Loser ({Winner})"),
        in_set(f"{level.lower()}_is_grand_slam", level, ["Grand Slam"]),
        in_set("tournament_is_a_slam", "Tournament", SLAM_TOURNAMENTS),
        in_set("comment_known", "Comment", SLAM_COMMENTS),
        *[p for code, who in bookmakers.items() for side in "WL" for p in _price_limits(f"{code}{side}", who)],
        *[between(f"{snake(c)}_at_least_1", c, 1) for c in ("WRank", "LRank")],
        *[between(f"{snake(c)}_non_negative", c, 0) for c in ("WPts", "LPts")],
        *[between(f"{snake(c)}_non_negative", c, 0) for c in games],
        *[between(f"{snake(c)}_at_most_{most}", c, 0, most) for c in ("Wsets", "Lsets")],
    ]


def pbp_matches(row_bounds: RowBounds = (14_000, 40_000)) -> list[Expectation]:
    """Point-by-point sequences of ATP matches 2011-2015 (Sackmann)."""
    return [
        *schema("pbp_matches"),
        row_count(*row_bounds),
        unique(
            "pbp_id_unique",
            ["pbp_id"],
            reason="pbp_id {pbp_id} listed more than once (first at line "
            "{first[source_line]}, tny_name {first[tny_name]!r}); an erratum on the id "
            "sets every copy aside",
        ),
        in_set("winner_is_1_or_2", "winner", [1, 2]),
        differ("servers_differ", "server1", "server2", reason="server1 equals server2 ({server1})"),
        matches("pbp_only_point_codes", "pbp", PBP_POINTS, reason="pbp has characters other than S R A D ; . /"),
        in_set("draw_known", "draw", ["Main", "Qual"]),
        in_set("tour_is_atp", "tour", ["ATP"]),
        in_set("adf_flag_is_0_or_1", "adf_flag", [0, 1]),
        between(
            "date_in_range",
            "date",
            dt.datetime(2000, 1, 1),
            FAR_FUTURE,
            reason="date {date} outside 2000-01-01..2100-01-01",
        ),
    ]


def slam_matches(row_bounds: RowBounds = (1_400, 40_000)) -> list[Expectation]:
    """The matches of the Grand Slam point-level logs (Sackmann)."""
    return [
        *schema("slam_matches"),
        row_count(*row_bounds),
        unique(
            "match_id_unique",
            ["match_id"],
            reason="match_id {match_id} listed twice: same id as line {first[source_line]}",
        ),
        matches("match_id_is_year_slam_number", "match_id", rf"^\d{{4}}-(?:{'|'.join(SLAMS)})-\d+$"),
        in_set("winner_is_0_1_or_2", "winner", [0, 1, 2], reason="winner {winner} is not 1 or 2 (or 0 for unfinished)"),
        differ("players_differ", "player1", "player2", reason="player1 equals player2 ({player1})"),
        in_set("slam_known", "slam", SLAMS),
        between("year_in_range", "year", 2011, 2100),
        between("match_num_non_negative", "match_num", 0),
    ]


def slam_points(row_bounds: RowBounds = (250_000, 5_000_000)) -> list[Expectation]:
    """Point-level logs of Grand Slam matches with timings (Sackmann)."""
    # PointNumber 0 is each match's opening row (no point played: winner and server are 0).
    played = _column("PointNumber") > 0
    return [
        *schema("slam_points"),
        row_count(*row_bounds),
        unique(
            "point_key_unique",
            ["match_id", "PointNumber"],
            reason="point {PointNumber} of {match_id} listed twice: first at line {first[source_line]}",
        ),
        between("point_number_non_negative", "PointNumber", 0),
        in_set(
            "point_winner_is_1_or_2",
            "PointWinner",
            [1, 2],
            where=played,
            reason="PointWinner {PointWinner} is neither player 1 nor 2 (point {PointNumber} of {match_id})",
        ),
        in_set(
            "point_server_is_1_or_2",
            "PointServer",
            [1, 2],
            where=played,
            reason="PointServer {PointServer} is neither player 1 nor 2 (point {PointNumber} of {match_id})",
        ),
        between("set_no_at_least_1", "SetNo", 1),
        between("game_no_at_least_1", "GameNo", 1),
        between("p1_games_won_non_negative", "P1GamesWon", 0),
        between("p2_games_won_non_negative", "P2GamesWon", 0),
        in_set("set_winner_is_0_1_or_2", "SetWinner", [0, 1, 2]),
        in_set("game_winner_is_0_1_or_2", "GameWinner", [0, 1, 2]),
        in_set("serve_indicator_is_0_1_or_2", "ServeIndicator", [0, 1, 2]),
        *[in_set(f"{snake(c)}_is_0_or_1", c, [0, 1]) for c in ("P1Ace", "P2Ace", "P1DoubleFault", "P2DoubleFault")],
        between("speed_kmh_plausible", "Speed_KMH", 0, 300),
        between("rally_non_negative", "Rally", 0),
        *[matches(f"{snake(c)}_is_a_score", c, r"^(?:AD|\d{1,2})$") for c in ("P1Score", "P2Score")],
        # Some upstream times lost a trailing digit ("2:07:3"): still a clock, so they pass.
        matches("elapsed_time_is_a_clock", "ElapsedTime", r"^\d{1,2}:\d{1,2}:\d{1,2}$"),
    ]


SuiteBuilder = Callable[..., "list[Expectation]"]
"""Builds a suite; called with no argument for the full history, or ``row_bounds=(low, high)``."""

SUITES: dict[str, SuiteBuilder] = {
    "atp_matches": atp_matches,
    "atp_matches_qual_chall": atp_matches_qual_chall,
    "atp_players": atp_players,
    "wta_matches": wta_matches,
    "wta_players": wta_players,
    "wta_odds_slams": wta_odds_slams,
    "odds_tour": odds_tour,
    "odds_slams": odds_slams,
    "pbp_matches": pbp_matches,
    "slam_matches": slam_matches,
    "slam_points": slam_points,
}
"""The suite of each dataset, by dataset name."""


def validate_dataset(
    dataset: str,
    frame: pd.DataFrame,
    *,
    row_bounds: RowBounds | None = None,
    all_failing_rows: bool = False,
) -> SuiteResult:
    """Run the suite of ``dataset`` on an ingested frame; failing rows are shown with their key.

    ``row_bounds`` replaces the suite's plausible row count (for a part of the history, e.g. one
    year or a live batch).
    """
    builder = SUITES[dataset]
    expectations = builder() if row_bounds is None else builder(row_bounds=row_bounds)
    return validate(frame, dataset, expectations, context_columns=SPECS[dataset].key, all_failing_rows=all_failing_rows)
