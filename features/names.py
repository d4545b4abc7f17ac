"""Players' names as the sources spell them: ASCII folding and normalisation, the readings of a
bookmaker name (``"Surname I."``) or a full name (``"Given Names Surname"``), and how well a reading
fits a player's (given names, surname): the spelling half of ``features.identity``.

Pure stdlib / numpy / pandas: domain code shared by every lane (the player snapshot normalises names
with it too).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

GENERIC_TOURNEY_WORDS = frozenset(
    {
        "open",
        "masters",
        "cup",
        "tour",
        "finals",
        "final",
        "championships",
        "championship",
        "international",
        "tennis",
        "atp",
        "men",
        "mens",
        "gentlemen",
        "gentlemens",
        "singles",
        "qualifying",
        "html",
        "grand",
        "prix",
        "trophy",
        "classic",
        "indoors",
        "indoor",
        "world",
    }
)
"""Words of tournament names that say nothing about which tournament it is."""

PARTICLES = frozenset(
    {
        "de",
        "da",
        "di",
        "del",
        "della",
        "dela",
        "der",
        "den",
        "van",
        "von",
        "la",
        "le",
        "du",
        "dos",
        "das",
        "do",
        "el",
        "al",
        "y",
        "e",
        "ter",
        "ten",
        "st",
        "dal",
        "des",
        "los",
        "las",
    }
)
"""Surname particles: too common to identify anyone on their own."""

SUFFIXES = frozenset({"jr", "sr", "ii", "iii"})
"""Generational suffixes, written by some sources and not by others: ignored when matching."""

_CHAR_FOLD = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "ß": "ss",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ı": "i",
        "þ": "th",
        "Þ": "Th",
        "ð": "d",
        "Ð": "D",
        "\u2019": "'",
        "\u2018": "'",
        "`": "'",
        "\u00b4": "'",
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
    }
)
_APOSTROPHES = re.compile(r"'")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
_SUFFIX_WORD = re.compile(r"\b(?:jr|sr)\b\.?", re.IGNORECASE)
_NOT_A_PLAYER = re.compile(r"/|\bdoubles\b", re.IGNORECASE)


# --- normalisation ------------------------------------------------------------------------------


def fold_ascii(text: str) -> str:
    """``text`` without accents, special letters spelled in ASCII (``Müller`` -> ``Muller``)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_CHAR_FOLD))
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return kept.encode("ascii", "ignore").decode("ascii")


def normalize_name(text: object) -> str:
    """Canonical spelling of a name: ASCII, lower case, apostrophes dropped, every run of other
    non-alphanumeric characters (hyphens, dots, spaces) turned into one space.

    ``"Carreño-Busta P."`` -> ``"carreno busta p"``, ``"O'Connell"`` -> ``"oconnell"``.
    Missing values give ``""``.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)) or text is pd.NA:
        return ""
    folded = fold_ascii(str(text)).lower()
    return _SEPARATORS.sub(" ", _APOSTROPHES.sub("", folded)).strip()


def name_tokens(text: object) -> tuple[str, ...]:
    """The words of a normalised name, generational suffixes (``jr``, ``sr``) left out."""
    return tuple(t for t in normalize_name(text).split() if t not in SUFFIXES)


def compact_name(text: object) -> str:
    """A name without separators: ``"De Heart"`` and ``"Deheart"`` both give ``"deheart"``."""
    return "".join(name_tokens(text))


def tournament_words(name: object) -> frozenset[str]:
    """Distinctive words (4+ letters, not generic like ``open``) of a tournament name."""
    return frozenset(t for t in normalize_name(name).split() if len(t) >= 4 and t not in GENERIC_TOURNEY_WORDS)


def significant_tokens(tokens: Iterable[str]) -> frozenset[str]:
    """The tokens of a surname that can identify someone: no particles, no single letters."""
    return frozenset(t for t in tokens if len(t) > 1 and t not in PARTICLES)


# --- parsing names into readings ----------------------------------------------------------------


@dataclass(frozen=True)
class NameReading:
    """One way to read a name: its surname tokens and its given-name part.

    ``abbreviated`` readings carry initials (``("j", "m")`` for ``J.M.``, ``("an",)`` for ``An.``)
    that must prefix the player's given names; full readings carry the given names themselves.
    ``penalty`` is added to the match level (a swapped surname-first reading costs 1).
    """

    surname: tuple[str, ...]
    given: tuple[str, ...]
    abbreviated: bool
    penalty: int = 0


def _initial_parts(token: str, last: bool) -> tuple[str, ...] | None:
    """The initials written in one token (``J.M.`` -> ``(j, m)``, ``An.`` -> ``(an,)``, and as
    the ``last`` token also ``JC`` -> ``(j, c)``), or None when the token is a word."""
    letters = re.sub(r"[^A-Za-z]", "", token)
    if not letters:
        return ()
    if "." in token and len(letters) <= 3:
        return tuple(p.lower() for p in re.split(r"[.\-\s]+", token) if p)
    if last and token.isupper() and len(letters) <= 3:
        return tuple(c.lower() for c in letters)
    return None


def parse_abbreviated(name: object) -> NameReading | None:
    """Read a tennis-data.co.uk name ``"Surname I."`` (``"Del Potro J. M."``, ``"Stebe C-M."``,
    ``"Aragone JC"``, ``"Zhang Ze"``, ``"Bogomolov Jr.A."``); None when nothing is left to read."""
    if name is None or name is pd.NA or (isinstance(name, float) and np.isnan(name)):
        return None
    text = _SUFFIX_WORD.sub(" ", fold_ascii(str(name))).strip()
    words = text.split()
    if not words:
        return None
    initials: list[str] = []
    while len(words) > 1:
        parts = _initial_parts(words[-1], last=not initials)
        if parts is None:
            break
        initials[:0] = parts
        words.pop()
    if not initials and len(words) > 1:  # "Zhang Ze": no dot, the last word is the given name
        initials = [normalize_name(words.pop())]
    surname = name_tokens(" ".join(words))
    if not surname:
        return None
    return NameReading(surname, tuple(i for i in initials if i), abbreviated=True)


def parse_full_name(name: object) -> tuple[NameReading, ...]:
    """All readings of a full name ``"Given Names Surname"``: every split of its words into given
    names and surname, and (one level worse) the surname-first order used for some Asian names.
    Empty for doubles pairs (``"A/B"``) and team labels (``"USA Doubles"``)."""
    if name is None or name is pd.NA or (isinstance(name, float) and np.isnan(name)):
        return ()
    if _NOT_A_PLAYER.search(str(name)):
        return ()
    tokens = name_tokens(name)
    if len(tokens) < 2:
        return (NameReading(tokens, (), abbreviated=False),) if tokens else ()
    readings = [NameReading(tokens[k:], tokens[:k], abbreviated=False) for k in range(1, len(tokens))]
    readings += [NameReading(tokens[:k], tokens[k:], abbreviated=False, penalty=1) for k in range(1, len(tokens))]
    return tuple(readings)


# --- scoring a reading against a player --------------------------------------------------------


def _surname_level(surname: tuple[str, ...], last: tuple[str, ...]) -> int | None:
    """0: same surname once separators are gone; 1: one surname's significant words contain the
    other's (``Bautista`` / ``Bautista Agut``); 2: they share a significant word; None: no fit."""
    if not surname or not last:
        return None
    if "".join(surname) == "".join(last):
        return 0
    a, b = significant_tokens(surname), significant_tokens(last)
    if not a or not b or not a & b:
        return None
    return 1 if a <= b or b <= a else 2


def _given_level(reading: NameReading, first: tuple[str, ...]) -> int:
    """0: given names agree; 1: agree loosely (initial only, short form, unknown given name,
    second initial differs, known by a second given name); 2: they disagree."""
    given = reading.given
    if not given or not first:
        return 1
    if reading.abbreviated:
        joined_first, joined_given = "".join(first), "".join(given)
        if first[0].startswith(given[0]) or joined_first.startswith(joined_given):
            if len(given) > 1 and len(first) > 1 and not first[1].startswith(given[1]):
                return 1
            return 0
        if len(first) > 1 and first[1].startswith(given[0]):
            return 1  # known by a second given name
        return 2
    if "".join(given) == "".join(first) or given[0] == first[0]:
        return 0
    if first[0].startswith(given[0]) or given[0].startswith(first[0]):
        return 1  # an initial, or a short form: Stan / Stanislas, Alex / Alexander
    return 2


def reading_level(reading: NameReading, first: tuple[str, ...], last: tuple[str, ...]) -> int | None:
    """How well one reading of a name fits a player's (given names, surname): 0 is exact, larger
    is looser, None means it does not fit at all."""
    if (
        not reading.abbreviated
        and reading.given
        and ("".join(reading.given + reading.surname) == "".join(first + last))
    ):
        return reading.penalty
    sur = _surname_level(reading.surname, last)
    if sur is None:
        return None
    return sur + _given_level(reading, first) + reading.penalty


def name_similarity(readings: Sequence[NameReading], first: tuple[str, ...], last: tuple[str, ...]) -> float:
    """Similarity (0..1) of a name to a player, for the fuzzy step: the best surname similarity
    (difflib ratio of the compact spellings) over the readings whose given part fits (level < 2),
    or of the whole full name."""
    best = 0.0
    last_c = "".join(last)
    for r in readings:
        if not r.abbreviated and r.given and first:
            whole = difflib.SequenceMatcher(None, "".join(r.given + r.surname), "".join(first + last)).ratio()
            best = max(best, whole - 0.05 * r.penalty)
        if _given_level(r, first) >= 2 or not last_c:
            continue
        ratio = difflib.SequenceMatcher(None, "".join(r.surname), last_c).ratio()
        best = max(best, ratio - 0.05 * r.penalty)
    return best
