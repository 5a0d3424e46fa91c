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


@dataclass(frozen=True)
class Columns:
    date: np.ndarray  # ISO date at its precision, "" unknown
    authors: np.ndarray  # packed, folded
    categories: np.ndarray  # packed, folded
    venue: np.ndarray  # folded
    sources: np.ndarray  # packed, folded source names (page files, input files)
    has_code: np.ndarray  # bool

    @classmethod
    def from_metadatas(cls, metadatas: list[Mapping]) -> Columns:
        return cls(
            date=np.array([str(m.get("date", "")) for m in metadatas], dtype=str),
            authors=np.array([packed(_list(m, "authors")) for m in metadatas], dtype=str),
            categories=np.array([packed(_list(m, "categories")) for m in metadatas], dtype=str),
            venue=np.array([folded(m.get("venue", "")) for m in metadatas], dtype=str),
            sources=np.array([packed(_list(m, "pages")) for m in metadatas], dtype=str),
            has_code=np.array([bool(_list(m, "code_links")) for m in metadatas], dtype=bool),
        )

    def __len__(self) -> int:
        return len(self.date)

    def save(self, folder: Path) -> None:
        np.savez(folder / COLUMNS_FILE, **{name: getattr(self, name) for name in self.__dataclass_fields__})

    @classmethod
    def load(cls, folder: Path) -> Columns:
        with np.load(folder / COLUMNS_FILE, allow_pickle=False) as stored:
            return cls(**{name: stored[name] for name in cls.__dataclass_fields__})
