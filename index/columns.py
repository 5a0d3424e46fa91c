"""Metadata columns of a snapshot: the fields filters test, row-aligned.

A filter over 100k papers is then a few vectorised comparisons and one substring search per text
field instead of 100k JSON decodes. List fields are packed as "|a|b|" so that an exact member is
found by searching for "|a|". Text is case- and accent-folded once, here. A text column is one
UTF-8 blob with offsets (`TextColumn`), memory-mapped once saved: a fixed-width numpy string array
would give every row the width of the longest value (a paper with 3,000 authors would make each
of a million rows 50 KB).
"""

from __future__ import annotations

import json
import mmap
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperchat.index.stored import joined_lines, mapped
from paperchat.index.tokenize import fold

COLUMNS_FILE = "columns.npz"
NUMBER_COLUMNS = ("date_from", "date_to", "has_code")
TEXT_COLUMNS = ("authors", "categories", "venue", "sources")
ROW_END = b"\n"  # after each row's text; folded text never holds one, so no match spans two rows


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


class TextColumn:
    """Folded text by row, in one or more parts (a snapshot's segments), each one UTF-8 blob with offsets: the
    part's row r is blob[offsets[r]:offsets[r + 1]], ROW_END included."""

    def __init__(self, parts: Sequence[tuple[bytes | mmap.mmap, np.ndarray]]) -> None:
        self.parts = list(parts)

    @classmethod
    def of(cls, values: Sequence[str]) -> TextColumn:
        return cls([joined_lines([value.encode("utf-8") + ROW_END for value in values])])

    @classmethod
    def joined(cls, columns: Sequence[TextColumn]) -> TextColumn:
        """The rows of several columns in order, nothing copied."""
        return cls([part for column in columns for part in column.parts])

    def __len__(self) -> int:
        return sum(len(offsets) - 1 for _, offsets in self.parts)

    def lengths(self) -> np.ndarray:
        """Bytes of each row's text."""
        return np.concatenate([np.diff(offsets) - len(ROW_END) for _, offsets in self.parts] or [np.zeros(0, int)])

    def contains(self, needle: str) -> np.ndarray:
        """Which rows' text holds `needle` (folded text): one search through each part's blob."""
        pattern = re.compile(re.escape(needle.encode("utf-8")))
        masks = []
        for blob, offsets in self.parts:
            found = np.zeros(len(offsets) - 1, dtype=bool)
            starts = np.fromiter((match.start() for match in pattern.finditer(blob)), dtype=np.int64)
            found[np.searchsorted(offsets, starts, side="right") - 1] = True
            masks.append(found)
        return np.concatenate(masks or [np.zeros(0, dtype=bool)])

    def save(self, folder: Path, name: str) -> None:
        """One part's column (a segment's): its blob as column-NAME.txt (the offsets go with the other columns)."""
        ((blob, _),) = self.parts
        (folder / f"column-{name}.txt").write_bytes(bytes(blob))

    @classmethod
    def load(cls, folder: Path, name: str, offsets: np.ndarray) -> TextColumn:
        blob = mapped(folder / f"column-{name}.txt")
        if len(blob) != offsets[-1]:
            raise ValueError(f"metadata column {name} does not match its offsets")
        return cls([(blob, offsets)])


@dataclass(frozen=True)
class Columns:
    date_from: np.ndarray  # first day the paper's date can mean, YYYYMMDD; 0 unknown
    date_to: np.ndarray  # last day it can mean
    authors: TextColumn  # packed, folded
    categories: TextColumn  # packed, folded
    venue: TextColumn  # folded
    sources: TextColumn  # packed, folded source names (page files, input files)
    has_code: np.ndarray  # bool
    live: np.ndarray  # bool; False: a row deleted since its segment was written (never saved: a segment's rows are)

    @classmethod
    def from_metadatas(cls, metadatas: list[Mapping]) -> Columns:
        bounds = np.array([date_bounds(str(m.get("date", ""))) for m in metadatas], dtype=np.int32).reshape(-1, 2)
        return cls(
            date_from=bounds[:, 0],
            date_to=bounds[:, 1],
            authors=TextColumn.of([packed(_list(m, "authors")) for m in metadatas]),
            categories=TextColumn.of([packed(_list(m, "categories")) for m in metadatas]),
            venue=TextColumn.of([folded(m.get("venue", "")) for m in metadatas]),
            sources=TextColumn.of([packed(_list(m, "pages")) for m in metadatas]),
            has_code=np.array([bool(_list(m, "code_links")) for m in metadatas], dtype=bool),
            live=np.ones(len(metadatas), dtype=bool),
        )

    def __len__(self) -> int:
        return len(self.date_from)

    @classmethod
    def joined(cls, parts: Sequence[Columns], live: np.ndarray) -> Columns:
        """The columns of several segments' rows in order, with the rows' `live` mask."""
        return cls(
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in NUMBER_COLUMNS},
            **{name: TextColumn.joined([getattr(p, name) for p in parts]) for name in TEXT_COLUMNS},
            live=live,
        )

    def save(self, folder: Path) -> None:
        for name in TEXT_COLUMNS:
            getattr(self, name).save(folder, name)
        np.savez(
            folder / COLUMNS_FILE,
            **{name: getattr(self, name) for name in NUMBER_COLUMNS},
            **{f"{name}_offsets": getattr(self, name).parts[0][1] for name in TEXT_COLUMNS},
        )

    @classmethod
    def load(cls, folder: Path) -> Columns:
        with np.load(folder / COLUMNS_FILE, allow_pickle=False) as stored:
            saved = {name: stored[name] for name in stored.files}
        return cls(
            **{name: saved[name] for name in NUMBER_COLUMNS},
            **{name: TextColumn.load(folder, name, saved[f"{name}_offsets"]) for name in TEXT_COLUMNS},
            live=np.ones(len(saved["date_from"]), dtype=bool),
        )
