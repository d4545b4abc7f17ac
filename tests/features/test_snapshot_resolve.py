"""Player references a request may carry: an id, digits of an id, or a name — never a crash."""

import pandas as pd
import pytest

from features.snapshot import PlayerSnapshot, UnknownPlayer


def _snapshot() -> PlayerSnapshot:
    return PlayerSnapshot(
        state=None,
        as_of=pd.Timestamp("2021-12-19"),
        names={"novak djokovic": [104925]},
        display={104925: "Novak Djokovic"},
    )


@pytest.mark.parametrize("player", ["¹", "²", "１０４９２５", "104925x", "", "  "])
def test_a_reference_that_is_neither_an_id_nor_a_known_name_is_unknown_player(player):
    with pytest.raises(UnknownPlayer):
        _snapshot().resolve(player)


def test_ids_and_names_resolve():
    snap = _snapshot()
    assert snap.resolve(104925) == snap.resolve("104925") == snap.resolve("Novak Djokovic") == 104925


def _players() -> PlayerSnapshot:
    names = {
        "novak djokovic": [104925],
        "novak novakovic": [212148],
        "rafael nadal": [104745],
        "juan martin del potro": [105223],
        "serena williams": [200033],
        "sue williams": [224780],
    }
    display = {i: k.title() for k, ids in names.items() for i in ids}
    return PlayerSnapshot(
        state=None,
        as_of=pd.Timestamp("2021-12-19"),
        names=names,
        display=display,
        last_played={104925: pd.Timestamp("2021-11-20"), 200033: pd.Timestamp("2021-06-29")},
    )


@pytest.mark.parametrize(
    ("asked", "first"),
    [
        ("Novak Djokovich", 104925),  # a misspelling
        ("Djokovic N.", 104925),  # the bookmakers' form
        ("Rafa Nadal", 104745),
        ("Del Potro J.", 105223),  # a surname of two words
        ("Williams S.", 200033),  # two S. Williams: the one who has played first
    ],
)
def test_an_unknown_name_is_answered_with_the_closest_players(asked, first):
    snap = _players()
    assert snap.suggest(asked)[0] == first
    with pytest.raises(UnknownPlayer, match=rf"did you mean {snap.display[first]} \({first}\)"):
        snap.resolve(asked)


def test_a_name_like_nobody_gets_no_suggestion():
    snap = _players()
    assert snap.suggest("Zzyzx Qwerty") == [] and snap.suggest("") == []
    with pytest.raises(UnknownPlayer, match=r"^unknown player name 'Zzyzx Qwerty'$"):
        snap.resolve("Zzyzx Qwerty")
