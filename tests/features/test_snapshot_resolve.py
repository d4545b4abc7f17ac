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
