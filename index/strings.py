"""Strings kept for a lookup in both directions without a Python object per string: a segment's paper ids, and the
terms of its BM25 vocabulary.

At a million papers a list of the ids and a dict from id to row took 135 MB of each serving process's own memory, and
the BM25 vocabulary of the bench's papers (a million terms) about as much again. Here the strings are one fixed-width
array of their UTF-8 bytes plus their sort order, saved beside the segment and memory-mapped, so every process on
the host shares the pages; a string is found by binary search in that order.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from paperchat.index.stored import RESIDENT_ROWS, mapped_array


class Keys:
    """Strings to look up: as given, and (made when first asked) as UTF-8 bytes with the length of each."""

    def __init__(self, strings: Sequence[str]) -> None:
        self.strings = strings

    def __len__(self) -> int:
        return len(self.strings)

    @functools.cached_property
    def encoded(self) -> list[bytes]:
        return [text.encode("utf-8") for text in self.strings]

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        return np.fromiter(map(len, self.encoded), dtype=np.int64, count=len(self.encoded))


class StringTable:
    """Strings by row (`table[row]`, `table.at(rows)`, iteration), and rows by string (`rows_of`).

    A table of at most RESIDENT_ROWS strings also keeps them as a list and a dict (`resident`): small, and faster to
    read than decoding bytes and searching, which a bundled-size query would otherwise pay on every call."""

    def __init__(self, values: np.ndarray, order: np.ndarray | None) -> None:
        self.values = values  # bytes, fixed width (numpy drops the padding when a value is read)
        self.order = order  # rows by ascending string; None when the rows are in that order already
        self.resident = len(values) <= RESIDENT_ROWS
        self._strings = [value.decode("utf-8") for value in values.tolist()] if self.resident else None
        self._row_of = {text: row for row, text in enumerate(self._strings)} if self._strings is not None else None

    @classmethod
    def of(cls, strings: Sequence[str]) -> StringTable:
        values = np.array([text.encode("utf-8") for text in strings] or [b""], dtype=np.bytes_)[: len(strings)]
        ascending = bool(np.all(values[:-1] < values[1:])) if len(values) > 1 else True
        return cls(values, None if ascending else np.argsort(values, kind="stable"))

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, row: int) -> str:
        return self._strings[row] if self._strings is not None else self.values[row].decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        if self._strings is not None:
            return iter(self._strings)
        return (value.decode("utf-8") for value in self.values.tolist())

    def at(self, rows: np.ndarray | Sequence[int]) -> list[str]:
        """The strings of `rows`, in order."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._strings is not None:
            strings = self._strings
            return [strings[row] for row in rows.tolist()]
        return [value.decode("utf-8") for value in self.values[rows].tolist()]

    def rows_of(self, strings: Sequence[str] | Keys) -> np.ndarray:
        """The row of each of `strings`, -1 for one not here (pass `Keys` to look the same strings up in several
        tables: they are encoded once)."""
        keys = strings if isinstance(strings, Keys) else Keys(strings)
        if self._row_of is not None:
            row_of = self._row_of
            return np.fromiter((row_of.get(text, -1) for text in keys.strings), dtype=np.int64, count=len(keys))
        found = np.full(len(keys), -1, dtype=np.int64)
        if not len(self) or not len(found):
            return found
        asked = np.array(keys.encoded, dtype=self.values.dtype)  # a longer string is cut here, so it must fit too
        at = np.minimum(np.searchsorted(self.values, asked, sorter=self.order), len(self) - 1)
        rows = at if self.order is None else self.order[at]
        hit = (keys.lengths <= self.values.itemsize) & (self.values[rows] == asked)
        found[hit] = rows[hit]
        return found

    def save(self, folder: Path, stem: str) -> None:
        """As STEM.npy, and STEM-order.npy unless the strings are in ascending order."""
        np.save(folder / f"{stem}.npy", self.values)
        if self.order is not None:
            np.save(folder / f"{stem}-order.npy", self.order)

    @classmethod
    def load(cls, folder: Path, stem: str, legacy: str | None = None) -> StringTable:
        """Memory-mapped; with `legacy`, a folder written before the strings were a table is read from that JSON
        list instead (held in memory)."""
        if legacy is not None and not (folder / f"{stem}.npy").exists():
            return cls.of(json.loads((folder / legacy).read_text(encoding="utf-8")))
        order = folder / f"{stem}-order.npy"
        return cls(mapped_array(folder / f"{stem}.npy"), mapped_array(order) if order.exists() else None)
