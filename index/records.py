"""A row-aligned local copy of the documents and metadata Chroma holds.

Search needs the text and metadata of about fifteen papers per query (feedback documents
and the hits). Fetching them from Chroma costs about 1.5 ms a call at 100k papers; reading
them from this memory-mapped copy costs microseconds. Like the BM25 arrays it is derived
state: saved beside them, checked under the same fingerprint, rebuilt from Chroma.
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import numpy as np

from paperchat.index.stored import joined_lines, mapped

RECORDS_FILE = "records.jsonl"
OFFSETS_FILE = "records-offsets.npy"


class Records:
    """`(document, metadata)` by row: one JSON line each, found through an offsets array."""

    def __init__(self, blob: bytes | mmap.mmap, offsets: np.ndarray) -> None:
        self._blob = blob
        self._offsets = offsets

    @classmethod
    def from_lists(cls, documents: list[str], metadatas: list[dict]) -> Records:
        return cls(
            *joined_lines(
                [
                    json.dumps([document, metadata or {}], ensure_ascii=False).encode("utf-8") + b"\n"
                    for document, metadata in zip(documents, metadatas)
                ]
            )
        )

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def get(self, row: int) -> tuple[str, dict]:
        start, end = int(self._offsets[row]), int(self._offsets[row + 1])
        document, metadata = json.loads(self._blob[start:end])
        return document, metadata

    def save(self, folder: Path) -> None:
        (folder / RECORDS_FILE).write_bytes(bytes(self._blob))
        np.save(folder / OFFSETS_FILE, self._offsets)

    @classmethod
    def load(cls, folder: Path) -> Records:
        offsets = np.load(folder / OFFSETS_FILE)
        blob = mapped(folder / RECORDS_FILE)
        if len(blob) != offsets[-1]:
            raise ValueError("records file does not match its offsets")
        return cls(blob, offsets)
