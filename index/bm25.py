"""The BM25 side: an index over the documents' terms, derived from what Chroma holds.

Two engines behind one interface: `bm25s` (default; sparse matrices, memory-mapped on
load) and `rank-bm25` (the reference implementation, slow at scale). Both see the same
`Tokenizer` terms. It is saved and loaded as part of a `Snapshot` (`index/snapshot.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperchat.index.tokenize import Tokenizer

ENGINES = ("bm25s", "rank-bm25")
TERMS_FILE = "corpus_terms.jsonl"


@dataclass(frozen=True)
class BM25Params:
    """BM25 term-saturation (k1) and length-normalisation (b) parameters."""

    k1: float = 1.2
    b: float = 0.75


class BM25Index:
    """BM25 over a fixed number of documents (rows); `scores` returns one score per row."""

    def __init__(self, size: int, engine: str, tokenizer: Tokenizer, params: BM25Params, model) -> None:
        self.size = size
        self.engine = engine
        self.tokenizer = tokenizer
        self.params = params
        self._model = model
        self._vocab: dict[str, int] | None = getattr(model, "vocab_dict", None)
        self._idf: dict[str, float] | np.ndarray | None = None
        self._sorted: bool | None = None
        if engine == "bm25s" and size:
            # Plain ndarray views of the memory-mapped postings: indexing a np.memmap costs a Python object per call.
            self._indptr = np.asarray(model.scores["indptr"])
            self._indices = np.asarray(model.scores["indices"])
            self._data = np.asarray(model.scores["data"])

    @classmethod
    def build(
        cls,
        texts: list[str],
        engine: str = "bm25s",
        tokenizer: Tokenizer | None = None,
        params: BM25Params | None = None,
    ) -> BM25Index:
        tokenizer = tokenizer or Tokenizer()
        params = params or BM25Params()
        return cls(len(texts), engine, tokenizer, params, cls._fit(engine, tokenizer.batch(texts), params))

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
        return self.size

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every document for the query terms (zeros when no term is known)."""
        if not self.size:
            return np.zeros(0, dtype=np.float32)
        if self.engine == "bm25s":
            known = [t for t in query_terms if t in self._vocab]
            if not known:
                return np.zeros(self.size, dtype=np.float32)
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
            if not self.size:
                return False
            descending = np.flatnonzero(np.diff(self._indices) < 0) + 1
            self._sorted = bool(np.isin(descending, self._indptr).all())
        return self._sorted

    def idf(self, terms: list[str]) -> dict[str, float]:
        """Inverse document frequency (BM25 form) of each term; unknown terms get the maximum."""
        table = self._idf_table()
        unknown = self.max_idf
        if isinstance(table, dict):
            return {term: table.get(term, unknown) for term in terms}
        vocab = self._vocab or {}
        columns = np.fromiter((vocab.get(term, -1) for term in terms), dtype=np.int64, count=len(terms))
        values = (
            np.where(columns >= 0, table[np.maximum(columns, 0)], unknown)
            if len(table)
            else np.full(len(terms), unknown)
        )
        return dict(zip(terms, values.tolist()))

    @property
    def max_idf(self) -> float:
        """The IDF of a term no document holds: the most specific a term can be."""
        return self._idf_from_frequency(self.size, 0)

    def known(self, terms: list[str]) -> set[str]:
        """The terms that occur in at least one document."""
        table = self._idf_table()
        vocabulary = table if isinstance(table, dict) else (self._vocab or {})
        return {t for t in terms if t in vocabulary}

    def _idf_table(self) -> dict[str, float] | np.ndarray:
        """IDF of every known term, computed once: an array over bm25s's vocabulary, else a dict."""
        if self._idf is None:
            total = self.size
            if self.engine == "bm25s" and self.size:
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

    def search(self, query_terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the top `k` documents with a positive score, best first."""
        scores = self.scores(query_terms)
        top = top_positions(scores, k)
        return top, scores[top]

    def describe(self) -> dict:
        return {"engine": self.engine, "tokenizer": self.tokenizer.describe(), "k1": self.params.k1, "b": self.params.b}

    # --- persistence (inside a snapshot's build folder) ------------------------------------

    def save(self, folder: Path) -> None:
        if self.engine == "bm25s":
            if self.size:
                self._model.save(str(folder))
            return
        with (folder / TERMS_FILE).open("w", encoding="utf-8") as out:
            for doc in self._model.doc_terms if self._model else []:
                out.write(json.dumps(doc) + "\n")

    @classmethod
    def load(cls, folder: Path, size: int, engine: str, tokenizer: Tokenizer, params: BM25Params) -> BM25Index:
        """The index saved in `folder` (bm25s arrays memory-mapped); raises OSError/ValueError when unreadable."""
        if engine == "bm25s":
            import bm25s

            model = (
                bm25s.BM25.load(str(folder), mmap=True, show_progress=False) if size else cls._fit(engine, [], params)
            )
        else:
            with (folder / TERMS_FILE).open(encoding="utf-8") as lines:
                model = cls._fit(engine, [json.loads(line) for line in lines], params)
        return cls(size, engine, tokenizer, params, model)


def top_positions(scores: np.ndarray, k: int, positive_only: bool = True) -> np.ndarray:
    """Positions of the `k` highest scores (only positive ones by default), best first, ties by position."""
    if scores.size == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(k, scores.size)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.lexsort((top, -scores[top]))]
    return top[scores[top] > 0] if positive_only else top
