"""A segment's paper ids without a Python string per paper.

At a million papers a list of the ids and a dict from id to row took 135 MB of each serving process's own memory,
about a quarter of what a second replica on one host adds. Here the ids are one fixed-width array of their UTF-8
bytes plus their sort order, saved beside the segment and memory-mapped, so every process on the host shares the
pages; an id is found by binary search in that order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from paperchat.index.stored import mapped_array

IDS_FILE = "ids.npy"
ORDER_FILE = "ids-order.npy"
LEGACY_IDS_FILE = "ids.json"  # segments written before the ids were an array


class IdKeys:
    """Ids to look up, as their UTF-8 bytes and the length of each."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.encoded = [doc_id.encode("utf-8") for doc_id in ids]
        self.lengths = np.fromiter(map(len, self.encoded), dtype=np.int64, count=len(self.encoded))


class Ids:
    """Ids by row (`ids[row]`, `ids.at(rows)`), and rows by id (`rows_of`)."""

    def __init__(self, values: np.ndarray, order: np.ndarray) -> None:
        self.values = values  # bytes, fixed width (numpy drops the padding when a value is read)
        self.order = order  # rows by ascending id

    @classmethod
    def of(cls, ids: Sequence[str]) -> Ids:
        values = np.array([doc_id.encode("utf-8") for doc_id in ids] or [b""], dtype=np.bytes_)[: len(ids)]
        return cls(values, np.argsort(values, kind="stable"))

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, row: int) -> str:
        return self.values[row].decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        return (value.decode("utf-8") for value in self.values.tolist())

    def at(self, rows: np.ndarray | Sequence[int]) -> list[str]:
        """The ids of `rows`, in order."""
        return [value.decode("utf-8") for value in self.values[np.asarray(rows, dtype=np.int64)].tolist()]

    def rows_of(self, ids: Sequence[str] | IdKeys) -> np.ndarray:
        """The row of each of `ids`, -1 for an id not here (`IdKeys` when the same ids are looked up in several
        segments: they are encoded once)."""
        keys = ids if isinstance(ids, IdKeys) else IdKeys(ids)
        found = np.full(len(keys.encoded), -1, dtype=np.int64)
        if not len(self) or not len(found):
            return found
        asked = np.array(keys.encoded, dtype=self.values.dtype)  # a longer id is cut here, so it must fit too
        rows = self.order[np.minimum(np.searchsorted(self.values, asked, sorter=self.order), len(self) - 1)]
        hit = (keys.lengths <= self.values.itemsize) & (self.values[rows] == asked)
        found[hit] = rows[hit]
        return found

    def save(self, folder: Path) -> None:
        np.save(folder / IDS_FILE, self.values)
        np.save(folder / ORDER_FILE, self.order)

    @classmethod
    def load(cls, folder: Path) -> Ids:
        """Memory-mapped; a segment written before this format is read from its JSON list."""
        if not (folder / IDS_FILE).exists():
            return cls.of(json.loads((folder / LEGACY_IDS_FILE).read_text(encoding="utf-8")))
        return cls(mapped_array(folder / IDS_FILE), mapped_array(folder / ORDER_FILE))
