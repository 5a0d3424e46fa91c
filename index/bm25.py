"""The BM25 side: term frequencies per segment, scored with statistics global over all segments.

A snapshot is a base segment plus small delta segments (`index/snapshot.py`). Each segment keeps
only what does not change when others are added or removed (`Postings`: its documents' term
frequencies, term-major, and their lengths); the statistics BM25 needs from the whole collection
(number of live documents, document frequencies, average length) are computed over all segments
when a snapshot is assembled (`BM25Index`). So a score after any sequence of ingests and removals
equals, to float rounding, the score of one index built from scratch over the same documents; no
segment is ever rewritten for a statistic that moved. (bm25s and rank-bm25 bake the collection's
statistics into their stored arrays, which is why neither can add a segment.)

Two scoring formulas, named after the libraries whose scores they reproduce: `bm25s` (default;
Lucene's BM25: IDF log(1 + (N - df + 0.5) / (df + 0.5)), term weight tf / (tf + k1 * norm)) and
`rank-bm25` (Okapi BM25 as rank_bm25 computes it: IDF log((N - df + 0.5) / (df + 0.5)), negative
values replaced by 0.25 x the mean IDF, term weight tf * (k1 + 1) / (tf + k1 * norm)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperchat.index.stored import mapped_array, run_rows
from paperchat.index.strings import Keys, StringTable
from paperchat.index.tokenize import Tokenizer

ENGINES = ("bm25s", "rank-bm25")
TERMS_STEM = "bm25-terms"  # the vocabulary as a StringTable: bm25-terms.npy
LEGACY_VOCABULARY_FILE = "bm25-vocabulary.json"  # what segments written before held: the terms as a JSON list
# each saved as bm25-NAME.npy, memory-mapped; the last three are the same frequencies document-major
POSTINGS_ARRAYS = ("indptr", "rows", "frequencies", "lengths", "document_indptr", "columns", "counts")
OKAPI_EPSILON = 0.25  # rank_bm25's floor for negative IDFs, as a share of the mean IDF


@dataclass(frozen=True)
class BM25Params:
    """BM25 term-saturation (k1) and length-normalisation (b) parameters."""

    k1: float = 1.2
    b: float = 0.75


@dataclass(frozen=True)
class DocumentTerms:
    """One document's distinct terms, how often each occurs, its length in terms and each term's IDF: what query
    expansion and the relevance gate read of a top document (`BM25Index.document`)."""

    terms: np.ndarray  # str
    counts: np.ndarray  # float64
    length: int
    idf: np.ndarray  # float64


class Postings:
    """One segment's term frequencies, term-major: the rows holding term `terms[t]` (`columns_of` finds t) are
    rows[indptr[t]:indptr[t + 1]] (ascending), with their frequencies in `frequencies`; `lengths` holds each
    row's number of terms. The same frequencies document-major: row r holds the terms columns[document_indptr[r]:
    document_indptr[r + 1]], each `counts` times, so the top papers' terms are read, not tokenised again, a query.

    The terms are a memory-mapped `StringTable`: a million terms as Python strings and a dict took about 130 MB of
    each process."""

    def __init__(
        self,
        terms: StringTable | list[str],
        indptr: np.ndarray,
        rows: np.ndarray,
        frequencies: np.ndarray,
        lengths: np.ndarray,
        document_indptr: np.ndarray,
        columns: np.ndarray,
        counts: np.ndarray,
    ) -> None:
        self.terms = terms if isinstance(terms, StringTable) else StringTable.of(terms)
        self.indptr = indptr
        self.rows = rows
        self.frequencies = frequencies
        self.lengths = lengths
        self.document_indptr = document_indptr
        self.columns = columns
        self.counts = counts

    @classmethod
    def build(cls, documents: Sequence[Sequence[str]]) -> Postings:
        """The postings of tokenised documents (row i: documents[i])."""
        terms = sorted({t for doc in documents for t in doc})
        vocabulary = {t: i for i, t in enumerate(terms)}
        lengths = np.fromiter((len(doc) for doc in documents), dtype=np.int64, count=len(documents))
        columns = np.fromiter(
            (vocabulary[t] for doc in documents for t in doc), dtype=np.int64, count=int(lengths.sum())
        )
        owners = np.repeat(np.arange(len(documents), dtype=np.int64), lengths)
        pairs, frequencies = np.unique(columns * max(len(documents), 1) + owners, return_counts=True)
        term_of = pairs // max(len(documents), 1)
        row_of = pairs % max(len(documents), 1)
        indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_of, minlength=len(terms)), out=indptr[1:])
        by_document = np.argsort(row_of, kind="stable")  # each document's terms stay in column order
        document_indptr = np.zeros(len(documents) + 1, dtype=np.int64)
        np.cumsum(np.bincount(row_of, minlength=len(documents)), out=document_indptr[1:])
        return cls(
            terms,
            indptr,
            row_of.astype(np.int32),
            frequencies.astype(np.float32),
            lengths.astype(np.float32),
            document_indptr,
            term_of[by_document].astype(np.int32),
            frequencies[by_document].astype(np.float32),
        )

    def __len__(self) -> int:
        return len(self.lengths)

    def columns_of(self, terms: Keys) -> np.ndarray:
        """The column of each term, -1 for a term this segment does not hold."""
        return self.terms.rows_of(terms)

    def document_frequencies(self, live: np.ndarray | None) -> np.ndarray:
        """Per term of the vocabulary, how many of its rows are live (all rows without `live`)."""
        if live is None or not len(self.rows):
            return np.diff(self.indptr)
        counts = np.concatenate(([0], np.cumsum(live[self.rows], dtype=np.int64)))
        return counts[self.indptr[1:]] - counts[self.indptr[:-1]]

    def save(self, folder: Path) -> None:
        self.terms.save(folder, TERMS_STEM)
        for name in POSTINGS_ARRAYS:
            np.save(folder / f"bm25-{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> Postings:
        """Memory-mapped: a query reads the posting lists of its own terms only, and processes on one host share
        the pages."""
        terms = StringTable.load(folder, TERMS_STEM, legacy=LEGACY_VOCABULARY_FILE)
        postings = cls(terms, *(mapped_array(folder / f"bm25-{name}.npy") for name in POSTINGS_ARRAYS))
        entries = len(postings.rows)
        lined_up = (
            len(postings.indptr) == len(terms) + 1
            and len(postings.document_indptr) == len(postings.lengths) + 1
            and int(postings.indptr[-1]) == int(postings.document_indptr[-1]) == entries
            and entries == len(postings.frequencies) == len(postings.columns) == len(postings.counts)
        )
        if not lined_up:
            raise ValueError("BM25 postings do not line up with their vocabulary")
        return postings


class BM25Index:
    """BM25 over the rows of several segments (global row = segment start + row), deleted rows left out of every
    statistic and scored 0; `scores` returns one score per global row."""

    def __init__(
        self,
        segments: Sequence[Postings],
        engine: str,
        tokenizer: Tokenizer,
        params: BM25Params,
        live: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown BM25 engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.segments = list(segments)
        self.engine = engine
        self.tokenizer = tokenizer
        self.params = params
        self.live = list(live) if live is not None else [None] * len(self.segments)
        self.starts = np.concatenate(([0], np.cumsum([len(s) for s in self.segments]))).astype(np.int64)
        self.size = int(self.starts[-1])
        self.documents = sum(int(s.lengths.size if m is None else m.sum()) for s, m in zip(self.segments, self.live))
        total_length = sum(
            float(s.lengths.sum() if m is None else s.lengths[m].sum()) for s, m in zip(self.segments, self.live)
        )
        average = total_length / self.documents if self.documents else 1.0
        k1, b = params.k1, params.b
        # Per segment: k1 x the length normalisation of each row; frequencies of its terms over live rows.
        self._norms = [k1 * ((1 - b) + b * s.lengths / average) for s in self.segments]
        self._frequencies = [s.document_frequencies(m) for s, m in zip(self.segments, self.live)]
        self._df: dict[str, int] = {}
        self._idf: dict[str, float] = {}
        self._okapi_floor: float | None = None

    @classmethod
    def build(
        cls,
        texts: list[str],
        engine: str = "bm25s",
        tokenizer: Tokenizer | None = None,
        params: BM25Params | None = None,
    ) -> BM25Index:
        """One segment over `texts`."""
        tokenizer = tokenizer or Tokenizer()
        return cls([Postings.build(tokenizer.batch(texts))], engine, tokenizer, params or BM25Params())

    def __len__(self) -> int:
        return self.size

    # --- statistics ------------------------------------------------------------------------

    def document_frequency(self, term: str) -> int:
        """Live documents holding `term`, over every segment."""
        if term not in self._df:
            self._count_documents([term])
        return self._df[term]

    def _count_documents(self, terms: list[str]) -> None:
        """Keep the document frequency of each of `terms` not known yet, over every segment (each segment's lookup
        made for all of them at once)."""
        missing = [t for t in dict.fromkeys(terms) if t not in self._df]
        if not missing:
            return
        keys, found = Keys(missing), np.zeros(len(missing), dtype=np.int64)
        for segment, frequencies in zip(self.segments, self._frequencies):
            columns = segment.columns_of(keys)
            held = columns >= 0
            found[held] += np.asarray(frequencies)[columns[held]]
        self._df.update(zip(missing, found.tolist()))

    def _columns(self, terms: list[str]) -> list[np.ndarray]:
        """Each segment's column of each of `terms` (-1: not there)."""
        keys = Keys(terms)
        return [segment.columns_of(keys) for segment in self.segments]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """Inverse document frequency (Lucene's BM25 form) of each term; unknown terms get the maximum. Feedback asks
        for the ~450 distinct terms of five abstracts a query: each term's is kept, and the new ones are one array
        operation."""
        known = self._idf
        new = [t for t in dict.fromkeys(terms) if t not in known]
        if new:
            self._count_documents(new)
            frequencies = np.fromiter((self._df[t] for t in new), dtype=np.float64, count=len(new))
            known.update(zip(new, self._lucene_idf(frequencies).tolist()))
        return {t: known[t] for t in terms}

    def document(self, row: int) -> DocumentTerms:
        """The terms of the document at global `row`, read from its segment's document-major postings."""
        segment = int(np.searchsorted(self.starts, row, side="right")) - 1
        postings, local = self.segments[segment], row - int(self.starts[segment])
        start, end = int(postings.document_indptr[local]), int(postings.document_indptr[local + 1])
        terms = postings.terms.at(postings.columns[start:end])
        idf = self.idf(terms)
        return DocumentTerms(
            np.array(terms, dtype=str),
            np.asarray(postings.counts[start:end], dtype=np.float64),
            int(postings.lengths[local]),
            np.fromiter((idf[t] for t in terms), dtype=np.float64, count=len(terms)),
        )

    def _lucene_idf(self, frequency: float | np.ndarray) -> np.floating | np.ndarray:
        """Of one frequency (a float) or of an array of them (an array)."""
        return np.log(1 + (self.documents - frequency + 0.5) / (frequency + 0.5))

    @property
    def max_idf(self) -> float:
        """The IDF of a term no document holds: the most specific a term can be."""
        return float(self._lucene_idf(0))

    def known(self, terms: list[str]) -> set[str]:
        """The terms that occur in at least one live document."""
        return {t for t in terms if self.document_frequency(t) > 0}

    def _okapi_idf(self, frequency: int) -> float:
        idf = float(np.log(self.documents - frequency + 0.5) - np.log(frequency + 0.5))
        if idf >= 0:
            return idf
        if self._okapi_floor is None:  # rank_bm25: OKAPI_EPSILON x the mean IDF over the whole vocabulary
            frequencies: dict[str, int] = {}
            for segment, counts in zip(self.segments, self._frequencies):
                for term, count in zip(segment.terms, np.asarray(counts).tolist()):
                    frequencies[term] = frequencies.get(term, 0) + count
            values = [np.log(self.documents - f + 0.5) - np.log(f + 0.5) for f in frequencies.values() if f]
            self._okapi_floor = OKAPI_EPSILON * float(np.mean(values)) if values else 0.0
        return self._okapi_floor

    def _weight(self, term: str) -> float:
        frequency = self.document_frequency(term)
        return float(self._lucene_idf(frequency)) if self.engine == "bm25s" else self._okapi_idf(frequency)

    # --- scoring ---------------------------------------------------------------------------

    def _postings(self, column: int, segment: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows (in the segment) holding the term at `column` (-1: a term the segment does not hold), ascending, and
        the term's frequency in each (views of the memory-mapped arrays: nothing is read until used)."""
        postings = self.segments[segment]
        if column < 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        start, end = int(postings.indptr[column]), int(postings.indptr[column + 1])
        return postings.rows[start:end], postings.frequencies[start:end]

    def _saturated(self, segment: int, rows: np.ndarray, frequencies: np.ndarray, weight: float) -> np.ndarray:
        """The BM25 contribution of a term with `frequencies` in `rows` of a segment."""
        frequencies = np.asarray(frequencies, dtype=np.float32)
        saturation = frequencies / (frequencies + self._norms[segment][rows])
        if self.engine == "rank-bm25":
            saturation = saturation * (self.params.k1 + 1)
        return (weight * saturation).astype(np.float32)

    def _contributions(self, column: int, segment: int, weight: float) -> tuple[np.ndarray, np.ndarray]:
        """Rows (in the segment) holding the term at `column` and the term's BM25 contribution to each."""
        rows, frequencies = self._postings(column, segment)
        rows = np.asarray(rows, dtype=np.int64)
        return rows, self._saturated(segment, rows, frequencies, weight)

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every row for the query terms (a repeated term counts again; deleted rows score 0)."""
        scores = np.zeros(self.size, dtype=np.float32)
        self._count_documents(query_terms)
        terms = [term for term in query_terms if self.document_frequency(term)]
        columns = self._columns(terms)
        for i, term in enumerate(terms):
            weight = self._weight(term)
            for segment, start in enumerate(self.starts[:-1].tolist()):
                rows, values = self._contributions(int(columns[segment][i]), segment, weight)
                scores[start + rows] += values
        return self._without_deleted(scores)

    def weighted_term_scores(self, weights: Mapping[str, float], positions: np.ndarray) -> np.ndarray:
        """The sum over the terms of `weights` of weight x the term's BM25 contribution, for the rows at `positions`
        only (query expansion scores ten terms on a few hundred candidates). Each segment's candidates are read from
        its document-major postings, all of them at once: one gather of their terms, not a search of every term's
        posting list per segment (1.2 ms a query at 1M, against 2.0); the whole collection is never scored."""
        total = np.zeros(len(positions), dtype=np.float32)
        self._count_documents(list(weights))
        known = [(term, weight) for term, weight in weights.items() if self.document_frequency(term)]
        if not known or not len(positions):
            return total
        factors = np.array([weight * self._weight(term) for term, weight in known], dtype=np.float32)
        columns = self._columns([term for term, _ in known])
        segment_of = np.searchsorted(self.starts, positions, side="right") - 1
        for segment in np.unique(segment_of[(positions >= 0) & (positions < self.size)]).tolist():
            mine = np.flatnonzero(segment_of == segment)
            local = positions[mine] - self.starts[segment]
            if self.live[segment] is not None:
                alive = self.live[segment][local]
                mine, local = mine[alive], local[alive]
            wanted = columns[segment]  # column of each expansion term here, -1 where the segment lacks it
            order = np.argsort(wanted)
            postings = self.segments[segment]
            entries, run_starts = run_rows(postings.document_indptr, local)
            owner = np.repeat(np.arange(len(local)), np.diff(np.append(run_starts, len(entries))))  # entry's candidate
            held = np.asarray(postings.columns[entries])
            at = np.minimum(np.searchsorted(wanted, held, sorter=order), len(wanted) - 1)
            term = order[at]
            hit = wanted[term] == held
            owner, term = owner[hit], term[hit]
            saturation = self._saturated(segment, local[owner], postings.counts[entries[hit]], 1.0)
            np.add.at(total, mine[owner], saturation * factors[term])
        return total

    def _without_deleted(self, scores: np.ndarray) -> np.ndarray:
        for start, live in zip(self.starts[:-1].tolist(), self.live):
            if live is not None:
                scores[start : start + len(live)][~live] = 0.0
        return scores

    def search(self, query_terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the top `k` documents with a positive score, best first."""
        scores = self.scores(query_terms)
        top = top_positions(scores, k)
        return top, scores[top]

    def describe(self) -> dict:
        return {"engine": self.engine, "tokenizer": self.tokenizer.describe(), "k1": self.params.k1, "b": self.params.b}


def top_positions(scores: np.ndarray, k: int, positive_only: bool = True) -> np.ndarray:
    """Positions of the `k` highest scores (only positive ones by default), best first, ties by position.

    Only the scores at or above a lower bound of the k-th highest (`kth_lower_bound`) are sorted: at 1M a full
    `argpartition` took 12-22 ms here, the bound and the few thousand candidates about 2."""
    if scores.size == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(k, scores.size)
    keep = scores >= kth_lower_bound(scores, k)
    if positive_only:
        keep &= scores > 0  # a rare term's query scores few papers: the bound is 0, and the zeros are not candidates
    candidates = np.flatnonzero(keep)
    if len(candidates) > k:  # the exact k-th highest among them, and every score tied with it
        kth = np.partition(scores[candidates], len(candidates) - k)[len(candidates) - k]
        candidates = candidates[scores[candidates] >= kth]
    return candidates[np.lexsort((candidates, -scores[candidates]))[:k]]


def kth_lower_bound(scores: np.ndarray, k: int, blocks_per_k: int = 32) -> float:
    """A value the k-th highest of `scores` is at least. For a long array: the k-th highest of the maxima of
    k x `blocks_per_k` equal blocks (k blocks each hold a score that high, so at least k scores are); for a short
    one, -inf: every score is a candidate, and `top_positions` finds the k-th exactly among them."""
    blocks = k * blocks_per_k
    if scores.size < 4 * blocks:
        return -np.inf
    maxima = scores[: scores.size // blocks * blocks].reshape(blocks, -1).max(axis=1)
    return float(np.partition(maxima, blocks - k)[blocks - k])
