"""How the snapshot keeps its files: vector copies as float16, memory-mapped when large; text as one blob with
row offsets, memory-mapped.

Half the bytes of float32 on disk and in the page cache, and the page cache is shared by every
process on the host that maps the same file, so a second replica costs little. MiniLM's unit
vectors lose nothing that ranking sees: Cranfield, CISI and the bundled judged sets score the
same nDCG@10 to the third decimal (eval/README.md). A segment of at most RESIDENT_ROWS documents
is held as float32 in memory instead, because search scans such small indexes exactly, reading
every vector on every query, where a float16 map would be converted afresh each time. Values are
always the float16-rounded ones, so the process that wrote a segment ranks exactly as one that
loads it.
"""

from __future__ import annotations

import mmap
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

STORED_DTYPE = np.float16
RESIDENT_ROWS = 20_000  # documents; an exact scan of 20k x 384 floats takes about 2 ms


def held(vectors: np.ndarray, resident: bool) -> np.ndarray:
    """`vectors` as a process holds them: float16-rounded, as float32 when `resident`."""
    rounded = np.asarray(vectors, dtype=STORED_DTYPE)
    return rounded.astype(np.float32) if resident else rounded


def save_vectors(path: Path, vectors: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(vectors, dtype=STORED_DTYPE))


def load_vectors(path: Path, resident: bool) -> np.ndarray:
    """A saved array: read into memory as float32 when `resident`, else memory-mapped as stored."""
    return np.load(path).astype(np.float32) if resident else mapped_array(path)


def run_rows(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In an owner-sorted layout (row r owns entries offsets[r]:offsets[r+1]: a document's passages, or its BM25 terms
    document-major), the entries of `rows`, run after run, and where each row's run starts in that list."""
    starts, ends = offsets[rows], offsets[rows + 1]
    counts = ends - starts
    run_starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if len(rows) else np.zeros(0, dtype=np.int64)
    within = np.arange(int(counts.sum())) - np.repeat(run_starts, counts)
    return np.repeat(starts, counts) + within, run_starts


def mapped_array(path: Path) -> np.ndarray:
    """A saved array, memory-mapped read-only, as a plain ndarray over the mapping: numpy's `memmap` subclass runs
    Python code on every slice and index, about 4 ms of a 1M query that slices posting lists segment by segment."""
    return np.load(path, mmap_mode="r").view(np.ndarray)


def joined_lines(lines: Sequence[bytes]) -> tuple[bytes, np.ndarray]:
    """Rows of bytes as one blob and the offsets that find them: row r is blob[offsets[r]:offsets[r + 1]]."""
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum([len(line) for line in lines], out=offsets[1:])
    return b"".join(lines), offsets


def mapped(path: Path) -> bytes | mmap.mmap:
    """A file's bytes, memory-mapped (an empty file as b"", which cannot be mapped)."""
    with path.open("rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if path.stat().st_size else b""


def write_text_atomically(path: Path, text: str) -> None:
    """Write `path` whole under a unique temporary name, then move it into place: a crash (or another writer) leaves
    the previous version, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
