"""The derived snapshot: everything search reads besides Chroma, as a base segment plus small delta segments.

A segment holds, row-aligned over its document ids: the BM25 term frequencies (`Postings`), a
copy of the document vectors, the documents and metadata (`Records`), the passage vectors of long
abstracts (`Passages`), the metadata columns filters test (`Columns`), and the vectors of the
words its abstracts bring that no earlier segment had (`Lexicon`, for the relevance gate's meaning
coverage; built only when given the embedder's `encode`). Segments are immutable. An ingest of N
papers writes one segment of N rows (several of SEGMENT_ROWS when N is larger) and marks the rows they
replace as deleted; a removal only marks rows; when more than MAX_SEGMENTS segments of one size tier are not
full, the writer folds the smallest of that tier into one (`segments_to_merge`: a merge costs what segments of
that size hold, never the whole index, and a small page never merges the large remnants of a bulk ingest).
A snapshot's rows are its segments' rows in order;
BM25 takes its statistics over all live rows (`index/bm25.py`), so scores are those of one index
built from scratch over the same papers.

A snapshot is immutable too: a search takes one and reads only it, so a refresh in the middle of
a query cannot mix rows of two states. On disk each segment is a folder, each set of deletions a
small file, and a manifest (`CURRENT.json`) names them: written last and switched atomically, so
a reader never sees a half-written state. The manifest records the format version, the
fingerprint of the Chroma state it derives from, the BM25 settings, and for each file its size and
a digest of sampled blocks (a few hundred KB of reads at any size, catching a missing, truncated or
overwritten file). A process that holds a snapshot and finds a new manifest loads only the
segments it does not hold yet (`Snapshot.load(..., previous=)`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from paperchat.index.bm25 import BM25Index, BM25Params, Postings, top_positions
from paperchat.index.columns import Columns
from paperchat.index.papers import Paper
from paperchat.index.passages import Lexicon, PassageBlock, Passages
from paperchat.index.plan import record_to_paper
from paperchat.index.records import Records
from paperchat.index.stored import RESIDENT_ROWS, held, load_vectors, save_vectors
from paperchat.index.strings import Keys, StringTable
from paperchat.index.tokenize import Tokenizer

# 7: base + delta segments, BM25 with global statistics; 8: float16 vector copies; 9: BM25 frequencies also by document
FORMAT_VERSION = 9
MANIFEST = "CURRENT.json"
STALE = "the derived snapshot does not account for the latest writes to Chroma"
IDS_STEM = "ids"  # ids.npy (and ids-order.npy)
LEGACY_IDS_FILE = "ids.json"  # what segments written before the ids were an array hold
VECTORS_FILE = "vectors.npy"
MAX_SEGMENTS = 8  # more segments than this in one tier below SEGMENT_ROWS after a write: the writer merges the smallest
MERGE_FLOOR = 1_000  # rows: segments smaller than this make the lowest merge tier
MERGE_FACTOR = 10  # each merge tier holds segments up to this many times larger than the one below
SEGMENT_ROWS = 100_000  # most papers an ingest or a rebuild puts in one segment (what it holds in memory at a time)
STALE_BUILD_SECONDS = 3600
SAMPLE_BLOCK = 1 << 16
TERMS_CACHE = 2_048  # papers whose terms a snapshot keeps (`Snapshot.document_terms`): a few KB each
SAMPLE_BLOCKS = 8


def file_digest(path: Path) -> dict:
    """Size and SHA-256 of sampled blocks (first, last and evenly spaced ones) of a file."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= SAMPLE_BLOCK * (SAMPLE_BLOCKS + 2):
            digest.update(handle.read())
        else:
            step = (size - SAMPLE_BLOCK) // (SAMPLE_BLOCKS + 1)
            for offset in [step * i for i in range(SAMPLE_BLOCKS + 1)] + [size - SAMPLE_BLOCK]:
                handle.seek(offset)
                digest.update(handle.read(SAMPLE_BLOCK))
    return {"size": size, "sample_sha256": digest.hexdigest()}


class _Parts:
    """One part per segment, read by snapshot row: row r is row r - starts[p] of part p."""

    def __init__(self, parts: Sequence, starts: np.ndarray | None = None) -> None:
        self.parts = list(parts)
        self.starts = (
            starts
            if starts is not None
            else np.concatenate(([0], np.cumsum([len(p) for p in self.parts]))).astype(np.int64)
        )

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, row: int) -> tuple:
        """The part holding snapshot row `row`, and the row's number in it."""
        part = int(np.searchsorted(self.starts, row, side="right")) - 1
        return self.parts[part], int(row) - int(self.starts[part])


class RowStack(_Parts):
    """The rows of several 2-D arrays (segments' memory-mapped vectors) read as one, without copying them."""

    def __init__(self, parts: Sequence[np.ndarray]) -> None:
        super().__init__(parts)
        self.shape = (len(self), self.parts[0].shape[1])

    def __getitem__(self, rows) -> np.ndarray:
        if np.ndim(rows) == 0:  # one row
            part, row = self.locate(int(rows))
            return np.asarray(part[row], dtype=np.float32)
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        found = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        part_of = np.searchsorted(self.starts, rows, side="right") - 1
        for part in np.unique(part_of).tolist():
            mine = np.flatnonzero(part_of == part)
            found[mine] = self.parts[part][rows[mine] - self.starts[part]]
        return found

    def __matmul__(self, vector: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(part) @ vector for part in self.parts])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.concatenate([np.asarray(part, dtype=dtype) for part in self.parts])


def stacked(parts: Sequence[np.ndarray]) -> np.ndarray | RowStack:
    """One array as itself, several as a `RowStack`."""
    return parts[0] if len(parts) == 1 else RowStack(parts)


@dataclass(frozen=True)
class Segment:
    """One immutable slice of an index's rows (see the module docstring); `name` is its folder."""

    name: str
    ids: StringTable
    vectors: np.ndarray
    records: Records
    passages: Passages
    columns: Columns
    lexicon: Lexicon
    postings: Postings

    @classmethod
    def build(
        cls,
        ids: list[str],
        documents: list[str],
        vectors: np.ndarray,
        metadatas: list[dict],
        passages: Passages,
        tokenizer: Tokenizer,
        encode: Callable[[list[str]], np.ndarray] | None = None,
        previous: Lexicon | None = None,
        new_words_only: bool = False,
    ) -> Segment:
        """A segment of what Chroma holds for `ids`. With `encode`, the words of the documents go into its lexicon,
        reusing the vectors of the words `previous` has (`new_words_only`: leaving those words out, for a delta
        whose snapshot already holds them)."""
        lexicon = Lexicon.build(documents, tokenizer.tokens, encode, vectors.shape[1], previous, new_words_only)
        resident = len(ids) <= RESIDENT_ROWS
        return cls(
            f"segment-{uuid.uuid4().hex[:12]}",
            StringTable.of(ids),
            held(vectors, resident),
            Records.from_lists(documents, metadatas),
            passages.held(resident),
            Columns.from_metadatas(metadatas),
            lexicon,
            Postings.build(tokenizer.batch(documents)),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, folder: Path) -> dict:
        """Write the segment's folder under `folder` (once: a segment is immutable); its manifest entry."""
        where = folder / self.name
        if not where.is_dir():  # a segment's folder appears whole (written under another name, then renamed)
            partial = folder / f".{self.name}.{uuid.uuid4().hex[:8]}"
            partial.mkdir(parents=True)
            self.postings.save(partial)
            save_vectors(partial / VECTORS_FILE, self.vectors)
            self.records.save(partial)
            self.passages.save(partial)
            self.columns.save(partial)
            self.lexicon.save(partial)
            self.ids.save(partial, IDS_STEM)
            os.replace(partial, where)
        return {
            "name": self.name,
            "documents": len(self),
            "files": {p.name: file_digest(p) for p in sorted(where.iterdir())},
        }

    @classmethod
    def load(cls, folder: Path, entry: dict) -> Segment:
        """The segment a manifest entry names; ValueError when a file is damaged or the parts do not line up."""
        where = folder / str(entry["name"])
        for name, expected in entry["files"].items():
            if file_digest(where / name) != expected:
                raise ValueError(f"derived file {entry['name']}/{name} is damaged")
        resident = int(entry["documents"]) <= RESIDENT_ROWS
        segment = cls(
            str(entry["name"]),
            StringTable.load(where, IDS_STEM, legacy=LEGACY_IDS_FILE),
            load_vectors(where / VECTORS_FILE, resident),
            Records.load(where),
            Passages.load(where, resident),
            Columns.load(where),
            Lexicon.load(where),
            Postings.load(where),
        )
        parts = (segment.ids, segment.vectors, segment.records, segment.passages, segment.columns, segment.postings)
        if len(segment.lexicon) and segment.lexicon.vectors.shape[1] != segment.vectors.shape[1]:
            raise ValueError("the derived snapshot's parts do not line up")
        if any(len(part) != entry["documents"] for part in parts):
            raise ValueError("the derived snapshot's parts do not line up")
        return segment


class Snapshot:
    """One immutable view of an index: its segments and their deleted rows, read as one set of rows (BM25 with
    global statistics, vectors, records, passages, metadata columns) plus the lexicon of all segments' words."""

    def __init__(
        self,
        segments: Sequence[Segment],
        deleted: Sequence[np.ndarray],
        engine: str,
        tokenizer: Tokenizer,
        params: BM25Params,
        deletion_files: Sequence[str | None] | None = None,
    ) -> None:
        self.segments = list(segments)
        self.deleted = [np.asarray(rows, dtype=np.int64) for rows in deleted]
        self.deletion_files = list(deletion_files) if deletion_files is not None else [None] * len(self.segments)
        self.starts = np.concatenate(([0], np.cumsum([len(s) for s in self.segments]))).astype(np.int64)
        live = [_live_mask(len(s), rows) for s, rows in zip(self.segments, self.deleted)]
        self.live = (
            None
            if all(m is None for m in live)
            else np.concatenate(
                [m if m is not None else np.ones(len(s), dtype=bool) for s, m in zip(self.segments, live)]
            )
        )
        self.ids = _IdStack([s.ids for s in self.segments], self.starts)
        self.bm25 = BM25Index([s.postings for s in self.segments], engine, tokenizer, params, live)
        dimension = self.segments[0].vectors.shape[1] if self.segments else 0
        self.vectors = stacked([s.vectors for s in self.segments]) if self.segments else np.zeros((0, dimension))
        self.records = _RecordStack([s.records for s in self.segments], self.starts)
        self.passages = _PassageStack([s.passages for s in self.segments], self.starts)
        self.columns = (
            self.segments[0].columns
            if len(self.segments) == 1 and self.live is None
            else Columns.joined(
                [s.columns for s in self.segments],
                self.live if self.live is not None else np.ones(len(self.ids), dtype=bool),
            )
        )
        self.lexicon = joined_lexicon([s.lexicon for s in self.segments], dimension)
        self.document_terms = functools.lru_cache(maxsize=TERMS_CACHE)(self.bm25.document)
        self.term_set = functools.lru_cache(maxsize=TERMS_CACHE)(self._term_set)
        self.word_rows = functools.lru_cache(maxsize=TERMS_CACHE)(self._word_rows)
        self.paper = functools.lru_cache(maxsize=TERMS_CACHE)(self._paper)

    @classmethod
    def build(
        cls,
        ids: list[str],
        documents: list[str],
        vectors: np.ndarray,
        metadatas: list[dict],
        passages: Passages,
        engine: str = "bm25s",
        tokenizer: Tokenizer | None = None,
        params: BM25Params | None = None,
        encode: Callable[[list[str]], np.ndarray] | None = None,
        previous: Snapshot | None = None,
    ) -> Snapshot:
        """A one-segment snapshot of what Chroma holds. With `encode` (the embedder's batched `encode`) the words of
        the documents are embedded into its lexicon, reusing the vectors of the words `previous` (the snapshot
        this one replaces) already has; without it the lexicon is empty and the gate reads words only."""
        tokenizer = tokenizer or Tokenizer()
        segment = Segment.build(
            ids, documents, vectors, metadatas, passages, tokenizer, encode, previous.lexicon if previous else None
        )
        return cls([segment], [np.zeros(0, dtype=np.int64)], engine, tokenizer, params or BM25Params())

    # --- changes ---------------------------------------------------------------------------

    def with_changes(self, added: Segment | None, replaced: Sequence[str]) -> Snapshot:
        """A new snapshot: this one with the rows of the ids in `replaced` deleted and the segment `added` (their
        new state, and new papers) after the others. Segments left without a live row are dropped."""
        rows = self.positions(list(dict.fromkeys(replaced)))
        rows = rows[rows >= 0]
        segments, deleted, files = [], [], []
        for number, segment in enumerate(self.segments):
            start, end = int(self.starts[number]), int(self.starts[number + 1])
            mine = rows[(rows >= start) & (rows < end)] - start
            gone = np.union1d(self.deleted[number], mine).astype(np.int64)
            last = number == len(self.segments) - 1 and not segments and (added is None or not len(added))
            if len(gone) == len(segment) and not last:  # no live row left (kept only if it is the last of all)
                continue
            segments.append(segment)
            deleted.append(gone)
            files.append(self.deletion_files[number] if len(gone) == len(self.deleted[number]) else None)
        if added is not None and len(added):
            segments.append(added)
            deleted.append(np.zeros(0, dtype=np.int64))
            files.append(None)
        return Snapshot(segments, deleted, self.bm25.engine, self.tokenizer, self.bm25.params, files)

    def merged(self, numbers: Sequence[int] | None = None) -> Snapshot:
        """This snapshot with the segments `numbers` (all when None) folded into one segment, after the others: their
        live rows in order, its lexicon the union of theirs. Nothing is read from Chroma and nothing is embedded."""
        numbers = sorted(range(len(self.segments)) if numbers is None else set(numbers))
        live = np.concatenate(
            [
                np.setdiff1d(np.arange(self.starts[n], self.starts[n + 1]), self.deleted[n] + self.starts[n])
                for n in numbers
            ]
            or [np.zeros(0, dtype=np.int64)]
        ).astype(np.int64)
        documents, metadatas = zip(*(self.records.get(int(row)) for row in live)) if len(live) else ((), ())
        ids = self.ids.at(live)
        owners, passage_numbers, vectors = self.passages.of(live)
        dimension = self.vectors.shape[1]
        lexicon = joined_lexicon([self.segments[n].lexicon for n in numbers], dimension)
        segment = replace(
            Segment.build(
                ids,
                list(documents),
                np.asarray(self.vectors[live], dtype=np.float32).reshape(len(live), dimension),
                list(metadatas),
                Passages.group(ids, [ids[o] for o in owners], passage_numbers, vectors, dimension),
                self.tokenizer,
            ),
            lexicon=Lexicon(lexicon.words, lexicon.terms, np.asarray(lexicon.vectors)),
        )
        kept = [n for n in range(len(self.segments)) if n not in numbers]
        return Snapshot(
            [self.segments[n] for n in kept] + [segment],
            [self.deleted[n] for n in kept] + [np.zeros(0, dtype=np.int64)],
            self.bm25.engine,
            self.tokenizer,
            self.bm25.params,
            [self.deletion_files[n] for n in kept] + [None],
        )

    def live_sizes(self) -> list[int]:
        """Papers (live rows) in each segment."""
        return [len(segment) - len(gone) for segment, gone in zip(self.segments, self.deleted)]

    # --- rows --------------------------------------------------------------------------

    def __len__(self) -> int:
        """Rows, deleted ones included (arrays over the snapshot have this length)."""
        return int(self.starts[-1])

    def live_rows(self) -> np.ndarray:
        """The rows of papers (not of deleted ones), in order."""
        return np.flatnonzero(self.live) if self.live is not None else np.arange(len(self))

    @property
    def documents(self) -> int:
        """Papers: the live rows."""
        return self.bm25.documents

    @property
    def passage_count(self) -> int:
        """Passage vectors of the live papers: what Chroma's passage collection holds for the state this snapshot
        derives from (counting there would make an embedded Chroma load that collection's whole HNSW graph)."""
        total = 0
        for segment, gone in zip(self.segments, self.deleted):
            counts = np.diff(segment.passages.offsets)
            total += int(counts.sum() - counts[gone].sum())
        return total

    @property
    def tokenizer(self) -> Tokenizer:
        return self.bm25.tokenizer

    def positions(self, ids: list[str]) -> np.ndarray:
        """Rows of `ids` as an array, -1 for an id not here (a deleted row's id maps to its newer row or to nothing).
        Each segment keeps its own lookup, so that assembling a snapshot after a change builds none over the index."""
        found = np.full(len(ids), -1, dtype=np.int64)
        keys = Keys(ids)
        for number in reversed(range(len(self.segments))):
            local = self.segments[number].ids.rows_of(keys)
            rows = local + self.starts[number]
            hit = (found < 0) & (local >= 0)
            if self.live is not None:
                hit[hit] = self.live[rows[hit]]
            found[hit] = rows[hit]
        return found

    def _term_set(self, row: int) -> frozenset[str]:
        """The distinct terms of the paper at `row` (the relevance gate reads the top papers'). `document_terms`,
        `term_set` and `word_rows` keep the last TERMS_CACHE rows asked: top papers recur from query to query."""
        return frozenset(self.document_terms(row).terms.tolist())

    def _word_rows(self, row: int) -> np.ndarray:
        """The lexicon rows of the words of the paper at `row` (the gate's meaning test)."""
        return self.lexicon.rows(self.document_terms(row).terms.tolist())

    def _paper(self, row: int) -> Paper:
        """The paper at `row`, kept like `document_terms` (a hit list parses ten records a query): callers share the
        object, so they read it and never change it."""
        return record_to_paper(self.ids[row], *self.records.get(row))

    def papers(self, ids: list[str]) -> dict[str, Paper]:
        """Papers by id, for the ids this snapshot holds."""
        return {doc_id: self.paper(row) for doc_id, row in zip(ids, self.positions(ids).tolist()) if row >= 0}

    # --- dense side --------------------------------------------------------------------

    def passage_block(self, positions: np.ndarray) -> PassageBlock:
        """The passages of the documents at `positions`, gathered once for MaxP (`PassageBlock.best`)."""
        return self.passages.block(positions)

    def best_passage(self, vector: np.ndarray, positions: np.ndarray, similarities: np.ndarray) -> np.ndarray:
        """MaxP: each document's best cosine among its own vector (`similarities`) and its passages'."""
        return self.passage_block(positions).best(vector, similarities)

    def nearest(self, vector: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and MaxP cosines of the `k` nearest live documents by an exact scan of the local copies
        (only of `rows` when given: a filter's matching papers)."""
        if rows is not None:
            similarities = self.best_passage(vector, rows, np.asarray(self.vectors[rows]) @ vector)
            top = top_positions(similarities, min(k, len(rows)), positive_only=False)
            return rows[top], similarities[top].astype(np.float32)
        similarities = self.passages.scan(vector, self.vectors @ vector)
        if self.live is not None:
            similarities[~self.live] = -np.inf
        top = top_positions(similarities, min(k, self.documents), positive_only=False)
        return top, similarities[top].astype(np.float32)

    # --- persistence -------------------------------------------------------------------

    def settings(self) -> dict:
        return {"format": FORMAT_VERSION, **self.bm25.describe()}

    def save(self, folder: Path, fingerprint: str) -> None:
        """Write the segments and deletions not on disk yet, then switch the manifest atomically; drop what no
        manifest names any more."""
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for number, segment in enumerate(self.segments):
            entry = segment.save(folder)
            if len(self.deleted[number]):
                if self.deletion_files[number] is None:
                    self.deletion_files[number] = f"deleted-{uuid.uuid4().hex[:12]}.npy"
                    np.save(folder / self.deletion_files[number], self.deleted[number])
                entry["deleted"] = {
                    "file": self.deletion_files[number],
                    **file_digest(folder / self.deletion_files[number]),
                }
            entries.append(entry)
        manifest = {"fingerprint": fingerprint, "documents": self.documents, "segments": entries, **self.settings()}
        tmp = folder / f".{MANIFEST}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(tmp, folder / MANIFEST)
        keep = {entry["name"] for entry in entries} | {f for f in self.deletion_files if f}
        _remove_unnamed(folder, keep)

    @staticmethod
    def saved_fingerprint(folder: Path) -> str | None:
        """The Chroma fingerprint the snapshot saved in `folder` was derived at (None when there is none to read)."""
        try:
            return json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            return None

    @classmethod
    def load(
        cls,
        folder: Path,
        fingerprint: str,
        engine: str,
        tokenizer: Tokenizer,
        params: BM25Params,
        previous: Snapshot | None = None,
    ) -> tuple[Snapshot | None, str]:
        """The saved snapshot if it matches `fingerprint`, the format and the settings and is intact, else
        (None, why). Segments `previous` holds are taken from it, not read again."""
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, "no derived snapshot yet"
        except (OSError, ValueError):
            return None, "the derived snapshot's manifest is unreadable"
        if manifest.get("format") != FORMAT_VERSION:
            return (
                None,
                f"the derived snapshot has format {manifest.get('format')}, this version reads {FORMAT_VERSION}",
            )
        expected = {"engine": engine, "tokenizer": tokenizer.describe(), "k1": params.k1, "b": params.b}
        if any(manifest.get(key) != value for key, value in expected.items()):
            return None, "the derived snapshot was built with other BM25 settings"
        if manifest.get("fingerprint") != fingerprint:
            return None, STALE
        held = {s.name: s for s in previous.segments} if previous is not None else {}
        segments, deleted, files = [], [], []
        try:
            for entry in manifest["segments"]:
                segments.append(held.get(entry["name"]) or Segment.load(folder, entry))
                gone = entry.get("deleted")
                if gone:
                    path = folder / gone["file"]
                    if file_digest(path) != {"size": gone["size"], "sample_sha256": gone["sample_sha256"]}:
                        return None, f"derived file {gone['file']} is damaged"
                    deleted.append(np.load(path))
                    files.append(gone["file"])
                else:
                    deleted.append(np.zeros(0, dtype=np.int64))
                    files.append(None)
            snapshot = cls(segments, deleted, engine, tokenizer, params, files)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) and "derived" in str(exc) else type(exc).__name__
            return None, f"the derived snapshot is unreadable ({reason})"
        if snapshot.documents != manifest.get("documents"):
            return None, "the derived snapshot's parts do not line up"
        return snapshot, "loaded"


def segments_to_merge(
    sizes: Sequence[int],
    full: int = SEGMENT_ROWS,
    most: int = MAX_SEGMENTS,
    floor: int = MERGE_FLOOR,
    factor: int = MERGE_FACTOR,
) -> list[int]:
    """Which segments (by number, of their live row counts `sizes`) a merge folds into one (Lucene's tiered policy,
    reduced to sizes). Segments below `full` rows fall into size tiers (`merge_tier`); the lowest tier holding more
    than `most` of them gives up its smallest, as many as leave half of `most` free. Full segments (a bulk ingest's
    or a rebuild's) are never merged. So a merge after a small ingest costs what segments of its size hold: a daily
    page never folds the 25k-row remnants of a bulk ingest, and at most `most` segments stay in each tier."""
    tiers: dict[int, list[int]] = {}
    for number, size in enumerate(sizes):
        if size < full:
            tiers.setdefault(merge_tier(size, floor, factor), []).append(number)
    for tier in sorted(tiers):
        members = tiers[tier]
        if len(members) > most:
            smallest = sorted(members, key=lambda n: (sizes[n], n))
            return sorted(smallest[: len(members) - most // 2 + 1])
    return []


def merge_tier(size: int, floor: int = MERGE_FLOOR, factor: int = MERGE_FACTOR) -> int:
    """0 below `floor` rows, then one more for each `factor` times larger (1,000-9,999 rows: 1; 10,000-99,999: 2)."""
    tier, bound = 0, floor
    while size >= bound:
        tier, bound = tier + 1, bound * factor
    return tier


def _live_mask(rows: int, deleted: np.ndarray) -> np.ndarray | None:
    if not len(deleted):
        return None
    live = np.ones(rows, dtype=bool)
    live[deleted] = False
    return live


class _RecordStack(_Parts):
    """`Records.get` over the segments' records by snapshot row."""

    def get(self, row: int) -> tuple[str, dict]:
        records, row = self.locate(row)
        return records.get(row)


class _IdStack(_Parts):
    """The segments' ids (`StringTable`s) read by snapshot row."""

    def __getitem__(self, row: int) -> str:
        ids, row = self.locate(row)
        return ids[row]

    def __iter__(self) -> Iterator[str]:
        return (doc_id for ids in self.parts for doc_id in ids)

    def at(self, rows: np.ndarray | Sequence[int]) -> list[str]:
        """The ids of `rows`, in order."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.parts) == 1:
            return self.parts[0].at(rows)
        found: list[str] = [""] * len(rows)
        part_of = np.searchsorted(self.starts, rows, side="right") - 1
        for part in np.unique(part_of).tolist():
            mine = np.flatnonzero(part_of == part)
            for position, doc_id in zip(mine.tolist(), self.parts[part].at(rows[mine] - self.starts[part])):
                found[position] = doc_id
        return found


class _PassageStack(_Parts):
    """MaxP over the segments' passages by snapshot row (`Passages.block` and `scan`)."""

    def block(self, rows: np.ndarray) -> PassageBlock:
        if len(self.parts) == 1:
            return self.parts[0].block(rows)
        part_of = np.searchsorted(self.starts, rows, side="right") - 1
        pieces = []
        for part in np.unique(part_of[rows >= 0]).tolist():
            mine = np.flatnonzero((part_of == part) & (rows >= 0))
            pieces.append((mine, self.parts[part].block(rows[mine] - self.starts[part])))
        return PassageBlock.joined(pieces, self.parts[0].vectors.shape[1] if self.parts else 0)

    def scan(self, query: np.ndarray, doc_similarities: np.ndarray) -> np.ndarray:
        bounds = self.starts.tolist()
        return np.concatenate(
            [part.scan(query, doc_similarities[a:b]) for part, a, b in zip(self.parts, bounds, bounds[1:])]
            or [np.zeros(0, dtype=np.float32)]
        )

    def of(self, rows: np.ndarray) -> tuple[list[int], list[int], np.ndarray]:
        """The passages of the documents at `rows`: owner (position in `rows`), number, vector."""
        owners: list[int] = []
        numbers: list[int] = []
        vectors: list[np.ndarray] = []
        for position, row in enumerate(rows.tolist()):
            passages, local = self.locate(row)
            start, end = int(passages.offsets[local]), int(passages.offsets[local + 1])
            owners += [position] * (end - start)
            numbers += list(range(end - start))
            vectors.append(np.asarray(passages.vectors[start:end], dtype=np.float32))
        dimension = self.parts[0].vectors.shape[1] if self.parts else 0
        return owners, numbers, np.concatenate(vectors) if vectors else np.zeros((0, dimension), dtype=np.float32)


def joined_lexicon(parts: Sequence[Lexicon], dimension: int) -> Lexicon:
    """The segments' lexicons as one (each holds only words the earlier ones do not)."""
    filled = [p for p in parts if len(p)]
    if len(filled) <= 1:
        return filled[0] if filled else Lexicon([], [], np.zeros((0, dimension), dtype=np.float32))
    words = [w for p in filled for w in p.words]
    terms = [t for p in filled for t in p.terms]
    return Lexicon(words, terms, RowStack([p.vectors for p in filled]))


def _remove_unnamed(folder: Path, keep: set[str]) -> None:
    """Drop segments and deletion files no manifest names: finished ones at once, unfinished ones (a writer's
    partial folder) once clearly abandoned."""
    now = time.time()
    for path in [
        *folder.glob("segment-*"),
        *folder.glob("deleted-*"),
        *folder.glob(".segment-*"),
        *folder.glob("build-*"),
    ]:
        if path.name in keep:
            continue
        try:
            abandoned = now - path.stat().st_mtime > STALE_BUILD_SECONDS
        except OSError:
            continue
        if abandoned or not path.name.startswith("."):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
