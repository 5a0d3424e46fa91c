"""Metadata columns of a snapshot: the fields filters test, one numpy array each, row-aligned.

A filter over 100k papers is then a few vectorised comparisons (`numpy.char.find` for the
substring tests) instead of 100k JSON decodes. List fields are packed as "|a|b|" so that an
exact member is found by searching for "|a|". Text is case- and accent-folded once, here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperchat.index.tokenize import fold

COLUMNS_FILE = "columns.npz"


def folded(text: str) -> str:
    """Lower case without accents: how filter values and column values are compared."""
    return fold(" ".join(str(text).split()).casefold())


def packed(values: Iterable[str]) -> str:
    return "|" + "|".join(folded(v) for v in values if str(v).strip()) + "|"


def _list(metadata: Mapping, name: str) -> list[str]:
    try:
        values = json.loads(metadata.get(name) or "[]")
    except (TypeError, ValueError):
        return []
    return [str(v) for v in values] if isinstance(values, list) else []


def date_bounds(date: str) -> tuple[int, int]:
    """The first and last day an ISO date of any precision can mean, as YYYYMMDD numbers; (0, 0) when unknown.

    "2024" -> (20240101, 20241231), "2024-06" -> (20240601, 20240631), "2024-06-06" -> (20240606, 20240606).
    Day 31 of every month is a safe upper bound: only the order of the numbers matters.
    """
    parts = [int(part) for part in date.split("-")[:3] if part.isdigit()] if date else []
    if not parts or not 1000 <= parts[0] <= 9999:
        return 0, 0
    year, month, day = (parts + [0, 0])[:3]
    low = year * 10000 + (month or 1) * 100 + (day or 1)
    high = year * 10000 + (month or 12) * 100 + (day or 31)
    return low, high


@dataclass(frozen=True)
class Columns:
    date_from: np.ndarray  # first day the paper's date can mean, YYYYMMDD; 0 unknown
    date_to: np.ndarray  # last day it can mean
    authors: np.ndarray  # packed, folded
    categories: np.ndarray  # packed, folded
    venue: np.ndarray  # folded
    sources: np.ndarray  # packed, folded source names (page files, input files)
    has_code: np.ndarray  # bool
    live: np.ndarray  # bool; False: a row deleted since its segment was written (never saved: a segment's rows are)

    @classmethod
    def from_metadatas(cls, metadatas: list[Mapping]) -> Columns:
        bounds = np.array([date_bounds(str(m.get("date", ""))) for m in metadatas], dtype=np.int32).reshape(-1, 2)
        return cls(
            date_from=bounds[:, 0],
            date_to=bounds[:, 1],
            authors=np.array([packed(_list(m, "authors")) for m in metadatas], dtype=str),
            categories=np.array([packed(_list(m, "categories")) for m in metadatas], dtype=str),
            venue=np.array([folded(m.get("venue", "")) for m in metadatas], dtype=str),
            sources=np.array([packed(_list(m, "pages")) for m in metadatas], dtype=str),
            has_code=np.array([bool(_list(m, "code_links")) for m in metadatas], dtype=bool),
            live=np.ones(len(metadatas), dtype=bool),
        )

    def __len__(self) -> int:
        return len(self.date_from)

    def save(self, folder: Path) -> None:
        np.savez(
            folder / COLUMNS_FILE, **{name: getattr(self, name) for name in self.__dataclass_fields__ if name != "live"}
        )

    @classmethod
    def load(cls, folder: Path) -> Columns:
        with np.load(folder / COLUMNS_FILE, allow_pickle=False) as stored:
            saved = {name: stored[name] for name in cls.__dataclass_fields__ if name != "live"}
        return cls(**saved, live=np.ones(len(saved["date_from"]), dtype=bool))
