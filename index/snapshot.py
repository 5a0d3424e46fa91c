"""The derived snapshot: everything search reads besides Chroma, built from Chroma as one unit.

A snapshot holds, row-aligned over the same document ids: the BM25 arrays, a copy of the
document vectors, the documents and metadata (`Records`), the passage vectors of long
abstracts (`Passages`) and the metadata columns filters test (`Columns`); and, keyed by BM25
term, the vectors of the abstracts' words (`Lexicon`, for the relevance gate's meaning coverage;
built only when `build` is given the embedder's `encode`). It is immutable: a search takes one
snapshot and reads only it, so a refresh in the middle of a query cannot mix rows of two builds.

On disk a snapshot is a build folder plus a manifest (`CURRENT.json`) naming it, written last
and switched atomically, so a reader never sees a half-built snapshot. The manifest records the
format version, the fingerprint of the Chroma state it was built from, the BM25 settings, and
for each file its size and a digest of sampled blocks: checking that costs a few hundred KB of
reads at any size, and catches a missing, truncated or overwritten file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from paperchat.index.bm25 import BM25Index, BM25Params, top_positions
from paperchat.index.columns import Columns
from paperchat.index.papers import Paper
from paperchat.index.passages import Lexicon, Passages
from paperchat.index.plan import record_to_paper
from paperchat.index.records import Records
from paperchat.index.tokenize import Tokenizer

FORMAT_VERSION = 6  # 6: the lexicon (the words of the abstracts and their vectors, for the gate)
MANIFEST = "CURRENT.json"
IDS_FILE = "ids.json"
VECTORS_FILE = "vectors.npy"
STALE_BUILD_SECONDS = 3600
SAMPLE_BLOCK = 1 << 16
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


class Snapshot:
    """One immutable view of an index: BM25, vectors, records, passages and metadata columns (row-aligned),
    and the lexicon of the abstracts' words."""

    def __init__(
        self,
        ids: list[str],
        bm25: BM25Index,
        vectors: np.ndarray,
        records: Records,
        passages: Passages,
        columns: Columns,
        lexicon: Lexicon | None = None,
    ) -> None:
        self.ids = ids
        self.bm25 = bm25
        self.vectors = vectors
        self.records = records
        self.passages = passages
        self.columns = columns
        self.lexicon = lexicon if lexicon is not None else Lexicon([], [], np.zeros((0, vectors.shape[1]), np.float32))
        self._positions = {doc_id: i for i, doc_id in enumerate(ids)}

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
        """A snapshot of what Chroma holds. With `encode` (the embedder's batched `encode`) the words of the
        documents are embedded into its lexicon, reusing the vectors of the words `previous` (the snapshot
        this one replaces) already has; without it the lexicon is empty and the gate reads words only."""
        bm25 = BM25Index.build(documents, engine, tokenizer, params)
        lexicon = Lexicon.build(
            documents,
            bm25.tokenizer.tokens,
            encode,
            vectors.shape[1],
            previous.lexicon if previous is not None else None,
        )
        return cls(
            ids,
            bm25,
            vectors,
            Records.from_lists(documents, metadatas),
            passages,
            Columns.from_metadatas(metadatas),
            lexicon,
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def tokenizer(self) -> Tokenizer:
        return self.bm25.tokenizer

    # --- rows --------------------------------------------------------------------------

    def positions(self, ids: list[str]) -> np.ndarray:
        """Rows of `ids` as an array, -1 for an id not here."""
        return np.fromiter((self._positions.get(doc_id, -1) for doc_id in ids), dtype=np.int64, count=len(ids))

    def paper(self, row: int) -> Paper:
        return record_to_paper(self.ids[row], *self.records.get(row))

    def papers(self, ids: list[str]) -> dict[str, Paper]:
        """Papers by id, for the ids this snapshot holds."""
        return {doc_id: self.paper(row) for doc_id, row in zip(ids, self.positions(ids).tolist()) if row >= 0}

    # --- dense side --------------------------------------------------------------------

    def best_passage(self, vector: np.ndarray, positions: np.ndarray, similarities: np.ndarray) -> np.ndarray:
        """MaxP: each document's best cosine among its own vector (`similarities`) and its passages'."""
        return self.passages.best(vector, similarities, positions)

    def nearest(self, vector: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and MaxP cosines of the `k` nearest documents by an exact scan of the local copies
        (only of `rows` when given: a filter's matching papers)."""
        if rows is not None:
            similarities = self.best_passage(vector, rows, np.asarray(self.vectors[rows]) @ vector)
            top = top_positions(similarities, min(k, len(rows)), positive_only=False)
            return rows[top], similarities[top].astype(np.float32)
        similarities = self.passages.scan(vector, np.asarray(self.vectors) @ vector)
        top = top_positions(similarities, min(k, len(self)), positive_only=False)
        return top, similarities[top].astype(np.float32)

    # --- persistence -------------------------------------------------------------------

    def settings(self) -> dict:
        return {"format": FORMAT_VERSION, **self.bm25.describe()}

    def save(self, folder: Path, fingerprint: str) -> None:
        """Write a new build beside the old one, then switch the manifest atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        build = folder / f"build-{uuid.uuid4().hex[:12]}"
        build.mkdir()
        self.bm25.save(build)
        np.save(build / VECTORS_FILE, np.ascontiguousarray(self.vectors, dtype=np.float32))
        self.records.save(build)
        self.passages.save(build)
        self.columns.save(build)
        self.lexicon.save(build)
        (build / IDS_FILE).write_text(json.dumps(self.ids), encoding="utf-8")
        files = {p.name: file_digest(p) for p in sorted(build.iterdir())}
        manifest = {
            "fingerprint": fingerprint,
            "build": build.name,
            "documents": len(self.ids),
            "files": files,
            **self.settings(),
        }
        tmp = folder / f".{MANIFEST}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(tmp, folder / MANIFEST)
        _remove_old_builds(folder, keep=build.name)

    @classmethod
    def load(
        cls, folder: Path, fingerprint: str, engine: str, tokenizer: Tokenizer, params: BM25Params
    ) -> tuple[Snapshot | None, str]:
        """The saved snapshot if it matches `fingerprint`, the format and the settings and is intact, else
        (None, why)."""
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
        expected = {
            "fingerprint": fingerprint,
            "engine": engine,
            "tokenizer": tokenizer.describe(),
            "k1": params.k1,
            "b": params.b,
        }
        if any(manifest.get(key) != value for key, value in expected.items()):
            return None, "the derived snapshot is stale (the collection or BM25 settings changed)"
        build = folder / str(manifest.get("build", ""))
        try:
            for name, expected_digest in manifest["files"].items():
                if file_digest(build / name) != expected_digest:
                    return None, f"derived file {name} is damaged"
            ids = json.loads((build / IDS_FILE).read_text(encoding="utf-8"))
            vectors = np.load(build / VECTORS_FILE, mmap_mode="r")
            records = Records.load(build)
            passages = Passages.load(build)
            columns = Columns.load(build)
            lexicon = Lexicon.load(build)
            if len(lexicon) and lexicon.vectors.shape[1] != vectors.shape[1]:
                return None, "the derived snapshot's parts do not line up"
            if not len(ids) == len(vectors) == len(records) == len(passages) == len(columns) == manifest["documents"]:
                return None, "the derived snapshot's parts do not line up"
            bm25 = BM25Index.load(build, len(ids), engine, tokenizer, params)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"the derived snapshot is unreadable ({type(exc).__name__})"
        return cls(ids, bm25, vectors, records, passages, columns, lexicon), "loaded"


def _remove_old_builds(folder: Path, keep: str) -> None:
    """Drop superseded builds: finished ones at once, unfinished ones once clearly abandoned."""
    now = time.time()
    for build in folder.glob("build-*"):
        if build.name == keep:
            continue
        try:
            abandoned = now - build.stat().st_mtime > STALE_BUILD_SECONDS
        except OSError:
            continue
        if abandoned or (build / IDS_FILE).exists():
            shutil.rmtree(build, ignore_errors=True)
