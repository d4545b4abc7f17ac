"""API-Tennis's players as ours, on the real ATP players and matches: "N. Djokovic" is resolved and kept for his
key; an ambiguous name ("A. Zverev": Alexander or Mischa) is never guessed — it goes to the review list and its
match is followed without trading — until an operator says who it is, and then that answer stands."""

from __future__ import annotations

import pandas as pd
import pytest

from adapters.api_tennis.identity import VENUE, LiveIdentity
from adapters.api_tennis.snapshots import SnapshotTranslator
from adapters.api_tennis.vendor import VendorMatch, snapshots
from features.scoring import MatchFormat, Score
from feeds.historical import ingest
from feeds.sources import LocalDataSource
from storage import identity as store
from tests.engine.fixtures import live_db
from tests.real_data import data_dir

DJOKOVIC, FEDERER = 104925, 103819


@pytest.fixture(scope="module")
def sackmann():
    src = LocalDataSource(data_dir())
    players = ingest(src, "atp_players").frame
    matches = pd.concat(
        [ingest(src, "atp_matches").frame, ingest(src, "atp_matches_qual_chall").frame], ignore_index=True
    )
    matches["match_id"] = matches["tourney_id"] + ":" + matches["match_num"].astype(str)
    return matches, players


def _start(first: str, second: str, day: str, keys=(11, 12), event_key: int = 5):
    vm = VendorMatch(event_key, day, first, keys[0], second, keys[1], "Atp Singles", "Wimbledon", 2, day[:4])
    translator = SnapshotTranslator()
    (start,) = translator.translate([snapshots(vm, Score.start(MatchFormat(5), 0), [])[0]])
    return start, translator.matches[start.event_key].vendor_keys


def test_a_known_name_is_resolved_and_kept_for_its_key(sackmann, tmp_path):
    db = live_db(tmp_path)
    identity = LiveIdentity(*sackmann, db)
    start, keys = _start("N. Djokovic", "R. Federer", "2012-07-08")
    named = identity.identify(start, keys)
    assert (named.first_player_key, named.second_player_key) == (DJOKOVIC, FEDERER)
    assert identity.tradable(start.event_key) and store.review_list(db) == []
    assert store.known_player(db, VENUE, "11")["player_id"] == DJOKOVIC  # stored for the venue's key


def test_an_ambiguous_name_is_never_guessed_until_an_operator_says(sackmann, tmp_path):
    db = live_db(tmp_path)
    identity = LiveIdentity(*sackmann, db)
    start, keys = _start("A. Zverev", "R. Federer", "2019-06-01", keys=(21, 12))
    named = identity.identify(start, keys)
    assert named.first_player_key is None and not identity.tradable(start.event_key)
    # the rules resolve a match's pair together: with one name ambiguous, both wait for a person
    review = {r["name"]: r for r in store.review_list(db)}
    assert set(review) == {"A. Zverev", "R. Federer"} and "2 players of that name" in review["A. Zverev"]["method"]
    zverev = int(sackmann[1].query("name_first == 'Alexander' and name_last == 'Zverev'")["player_id"].iloc[0])
    store.set_player(db, VENUE, "21", zverev, "operator@test")
    assert not identity.tradable(identity.identify(start, keys).event_key)  # Federer still waits
    store.set_player(db, VENUE, "12", FEDERER, "operator@test")
    again = identity.identify(start, keys)
    assert (
        (again.first_player_key, again.second_player_key) == (zverev, FEDERER)
        and identity.tradable(start.event_key)
        and store.review_list(db) == []
    )
    store.record_player(db, VENUE, "21", "A. Zverev", None, "unmatched: the rules again")  # never over an operator
    assert store.known_player(db, VENUE, "21")["player_id"] == zverev
