"""The BM25 side: an index derived from the documents Chroma holds, saved with a fingerprint.

Two engines behind one interface: `bm25s` (default; sparse matrices, memory-mapped on
load) and `rank-bm25` (the reference implementation, slow at scale). Both see the same
`Tokenizer` terms. A saved index records the fingerprint of the collection it was built
from and the SHA-256 of every file, so a stale, truncated or corrupted index is noticed
on load and rebuilt instead of answering wrongly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.passages import PASSAGE_OFFSETS_FILE, Passages
from index.records import OFFSETS_FILE, Records
from index.tokenize import Tokenizer

ENGINES = ("bm25s", "rank-bm25")
POINTER = "CURRENT.json"
STALE_BUILD_SECONDS = 3600


@dataclass(frozen=True)
class BM25Params:
    """BM25 term-saturation (k1) and length-normalisation (b) parameters."""

    k1: float = 1.2
    b: float = 0.75


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LexicalIndex:
    """BM25 over a fixed list of document ids; `scores` returns one score per document.

    It may also carry row-aligned, memory-mapped copies of what Chroma holds: `vectors` (the
    embeddings), `records` (documents and metadata) and `passages` (the passage vectors of long
    abstracts, owner-sorted), so that search can score and show any candidate without a round
    trip to Chroma. Like the BM25 arrays they are derived state, saved and checked under the
    same fingerprint.
    """

    def __init__(
        self,
        ids: list[str],
        engine: str,
        tokenizer: Tokenizer,
        params: BM25Params,
        model,
        vectors: np.ndarray | None = None,
        records: Records | None = None,
        passages: Passages | None = None,
    ) -> None:
        self.ids = ids
        self.vectors = vectors
        self.records = records
        self.passages = passages
        self.engine = engine
        self.tokenizer = tokenizer
        self.params = params
        self._model = model
        self._vocab: dict[str, int] | None = getattr(model, "vocab_dict", None)
        self._positions = {doc_id: i for i, doc_id in enumerate(ids)}
        self._idf: dict[str, float] | np.ndarray | None = None
        self._sorted: bool | None = None
        if engine == "bm25s" and ids:
            # Plain ndarray views of the memory-mapped postings: indexing a np.memmap costs a Python object per call.
            self._indptr = np.asarray(model.scores["indptr"])
            self._indices = np.asarray(model.scores["indices"])
            self._data = np.asarray(model.scores["data"])

    @classmethod
    def build(
        cls,
        ids: list[str],
        texts: list[str],
        engine: str = "bm25s",
        tokenizer: Tokenizer | None = None,
        params: BM25Params | None = None,
        vectors: np.ndarray | None = None,
        metadatas: list[dict] | None = None,
        passages: Passages | None = None,
    ) -> LexicalIndex:
        """Index `texts`; with `metadatas`, also keep the texts and metadata as the local `records` copy."""
        tokenizer = tokenizer or Tokenizer()
        params = params or BM25Params()
        corpus = tokenizer.batch(texts)
        records = Records.from_lists(texts, metadatas) if metadatas is not None else None
        return cls(ids, engine, tokenizer, params, cls._fit(engine, corpus, params), vectors, records, passages)

    @staticmethod
    def _fit(engine: str, corpus: list[list[str]], params: BM25Params):
        if engine == "bm25s":
            import bm25s

            model = bm25s.BM25(k1=params.k1, b=params.b, method="lucene")
            if corpus:
                model.index(corpus, show_progress=False)
            return model
        if engine == "rank-bm25":
            from rank_bm25 import BM25Okapi

            if not corpus:
                return None
            model = BM25Okapi([doc or [""] for doc in corpus], k1=params.k1, b=params.b)
            model.doc_terms = corpus  # rank-bm25 cannot save itself: keep the terms to write them
            return model
        raise ValueError(f"unknown BM25 engine {engine!r}; choose one of {', '.join(ENGINES)}")

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every document for the query terms (zeros when no term is known)."""
        if not self.ids:
            return np.zeros(0, dtype=np.float32)
        if self.engine == "bm25s":
            known = [t for t in query_terms if t in self._vocab]
            if not known:
                return np.zeros(len(self.ids), dtype=np.float32)
            return np.asarray(self._model.get_scores(known), dtype=np.float32)
        return np.asarray(self._model.get_scores(query_terms), dtype=np.float32)

    def term_scores(self, term: str, positions: np.ndarray) -> np.ndarray:
        """BM25 contribution of one term to the documents at `positions` only.

        Reads the term's posting list from bm25s's term-major sparse matrix instead of scoring
        the whole collection: what query expansion needs for a few hundred candidates.
        """
        if self.engine != "bm25s" or not self._postings_sorted():
            return self.scores([term])[np.maximum(positions, 0)]
        column = self._vocab.get(term)
        start, end = (int(self._indptr[column]), int(self._indptr[column + 1])) if column is not None else (0, 0)
        if end == start:
            return np.zeros(len(positions), dtype=np.float32)
        rows = self._indices[start:end]
        at = np.minimum(np.searchsorted(rows, positions), end - start - 1)
        return np.where(rows[at] == positions, self._data[start:end][at], 0.0).astype(np.float32)

    def _postings_sorted(self) -> bool:
        """Whether every posting list is in document order (bm25s builds them so; checked once)."""
        if self._sorted is None:
            if not self.ids:
                return False
            descending = np.flatnonzero(np.diff(self._indices) < 0) + 1
            self._sorted = bool(np.isin(descending, self._indptr).all())
        return self._sorted

    def idf(self, terms: list[str]) -> dict[str, float]:
        """Inverse document frequency (BM25 form) of each term; unknown terms get the maximum."""
        table = self._idf_table()
        unknown = self._idf_from_frequency(len(self.ids), 0)
        if isinstance(table, dict):
            return {term: table.get(term, unknown) for term in terms}
        vocab = self._vocab or {}
        columns = np.fromiter((vocab.get(term, -1) for term in terms), dtype=np.int64, count=len(terms))
        values = np.where(columns >= 0, table[np.maximum(columns, 0)], unknown) if len(table) else np.full(len(terms), unknown)
        return dict(zip(terms, values.tolist()))

    def _idf_table(self) -> dict[str, float] | np.ndarray:
        """IDF of every known term, computed once: an array over bm25s's vocabulary, else a dict."""
        if self._idf is None:
            total = len(self.ids)
            if self.engine == "bm25s" and self.ids:
                self._idf = self._idf_from_frequency(total, np.diff(self._indptr))
            else:
                frequencies: dict[str, int] = {}
                for doc in getattr(self._model, "doc_terms", None) or []:
                    for t in set(doc):
                        frequencies[t] = frequencies.get(t, 0) + 1
                self._idf = {t: self._idf_from_frequency(total, f) for t, f in frequencies.items()}
        return self._idf

    @staticmethod
    def _idf_from_frequency(total: int, frequency):
        """BM25's IDF for a document frequency (a number, or an array of them)."""
        idf = np.log(1 + (total - frequency + 0.5) / (frequency + 0.5))
        return float(idf) if np.ndim(idf) == 0 else idf

    def positions(self, ids: list[str]) -> np.ndarray:
        """Rows of `ids` as an array, -1 for an id not here."""
        return np.fromiter((self._positions.get(doc_id, -1) for doc_id in ids), dtype=np.int64, count=len(ids))

    def rows(self, ids: list[str]) -> list[int] | None:
        """Rows of all `ids`, or None when any is unknown here (then the caller asks Chroma)."""
        rows = [self._positions.get(doc_id) for doc_id in ids]
        return None if None in rows else rows

    def best_passage(self, vector: np.ndarray, positions: np.ndarray, similarities: np.ndarray) -> np.ndarray:
        """MaxP: each document's best cosine among its own vector (`similarities`) and its passages'.

        `positions` are rows here (-1: not here; the document vector's cosine stands).
        """
        return similarities if self.passages is None else self.passages.best(vector, similarities, positions)

    def search(self, query_terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the top `k` documents with a positive score, best first."""
        scores = self.scores(query_terms)
        top = top_positions(scores, k)
        return top, scores[top]

    def describe(self) -> dict:
        return {"engine": self.engine, "tokenizer": self.tokenizer.describe(), "k1": self.params.k1, "b": self.params.b}

    # --- persistence -------------------------------------------------------------------

    def save(self, folder: Path, fingerprint: str) -> None:
        """Write a new build beside the old one, then switch the pointer atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        build = folder / f"build-{uuid.uuid4().hex[:12]}"
        build.mkdir()
        if self.engine == "bm25s":
            if self.ids:
                self._model.save(str(build))
        else:
            with (build / "corpus_terms.jsonl").open("w", encoding="utf-8") as out:
                for doc in (self._model.doc_terms if self._model else []):
                    out.write(json.dumps(doc) + "\n")
        if self.vectors is not None:
            np.save(build / "vectors.npy", np.ascontiguousarray(self.vectors, dtype=np.float32))
        if self.records is not None:
            self.records.save(build)
        if self.passages is not None:
            self.passages.save(build)
        (build / "ids.json").write_text(json.dumps(self.ids), encoding="utf-8")
        files = {p.name: _sha256(p) for p in sorted(build.iterdir())}
        manifest = {"fingerprint": fingerprint, "build": build.name, "files": files, **self.describe()}
        tmp = folder / f".{POINTER}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(tmp, folder / POINTER)
        _remove_old_builds(folder, keep=build.name)

    @classmethod
    def load(cls, folder: Path, fingerprint: str, engine: str, tokenizer: Tokenizer, params: BM25Params) -> tuple[LexicalIndex | None, str]:
        """The saved index if it matches `fingerprint` and settings and is intact, else (None, why)."""
        try:
            manifest = json.loads((folder / POINTER).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, "no BM25 index yet"
        except (OSError, ValueError):
            return None, "BM25 index pointer is unreadable"
        expected = {"fingerprint": fingerprint, "engine": engine, "tokenizer": tokenizer.describe(), "k1": params.k1, "b": params.b}
        if any(manifest.get(key) != value for key, value in expected.items()):
            return None, "BM25 index is stale (the collection or BM25 settings changed)"
        build = folder / str(manifest.get("build", ""))
        try:
            for name, digest in manifest["files"].items():
                if _sha256(build / name) != digest:
                    return None, f"BM25 file {name} is corrupted"
            ids = json.loads((build / "ids.json").read_text(encoding="utf-8"))
            vectors = np.load(build / "vectors.npy", mmap_mode="r") if "vectors.npy" in manifest["files"] else None
            if ids and (vectors is None or vectors.shape[0] != len(ids)):
                return None, "the saved vector copy is missing or does not match the ids"
            records = Records.load(build) if OFFSETS_FILE in manifest["files"] else None
            if ids and (records is None or len(records) != len(ids)):
                return None, "the saved record copy is missing or does not match the ids"
            passages = Passages.load(build) if PASSAGE_OFFSETS_FILE in manifest["files"] else None
            if ids and (passages is None or len(passages) != len(ids)):
                return None, "the saved passage copy is missing or does not match the ids"
            if engine == "bm25s":
                import bm25s

                model = bm25s.BM25.load(str(build), mmap=True, show_progress=False) if ids else cls._fit(engine, [], params)
            else:
                with (build / "corpus_terms.jsonl").open(encoding="utf-8") as lines:
                    model = cls._fit(engine, [json.loads(line) for line in lines], params)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"BM25 index is unreadable ({type(exc).__name__})"
        return cls(ids, engine, tokenizer, params, model, vectors, records, passages), "loaded"


def top_positions(scores: np.ndarray, k: int, positive_only: bool = True) -> np.ndarray:
    """Positions of the `k` highest scores (only positive ones by default), best first, ties by position."""
    if scores.size == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(k, scores.size)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.lexsort((top, -scores[top]))]
    return top[scores[top] > 0] if positive_only else top


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
        if abandoned or (build / "ids.json").exists():
            shutil.rmtree(build, ignore_errors=True)
