"""The search pipeline: query -> BM25 and vector sides -> fusion -> snippets -> `Hit`s.

Both sides are scored on the union of their candidates (BM25 scores every document;
cosine similarities of BM25-only candidates come from their stored vectors), so each
hit explains itself with a real score on both sides, and fusion never has to guess.
A document's vector-side score is MaxP: the best cosine of its own vector and of its
passages' (`index.passages`), so the endings of long abstracts count too.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from assistant.chat import relevance, search_terms
from assistant.fusion import adaptive_bm25_weight, expansion_terms, feedback_weights, rocchio, rrf, smooth, zscore
from assistant.hits import Citation, Hit
from assistant.settings import MODES, Settings
from assistant.snippets import make_snippet
from index.errors import PaperchatError
from index.lexical import LexicalIndex, top_positions
from index.papers import Paper
from index.store import Store

MAX_QUERY_CHARS = 2000
_BM25_WORKER = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="paperchat-bm25")
MAX_K = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")


def clean_query(query: str) -> tuple[str, list[str]]:
    """Normalise a user query: control characters become spaces; over-long queries are cut (with a notice)."""
    if not isinstance(query, str):
        raise PaperchatError("the query must be text")
    notices: list[str] = []
    text = " ".join(_CONTROL.sub(" ", query).split())
    if not text:
        raise PaperchatError("the query is empty; type a question or some keywords")
    if len(text) > MAX_QUERY_CHARS:
        text = text[:MAX_QUERY_CHARS].rsplit(" ", 1)[0] or text[:MAX_QUERY_CHARS]
        notices.append(f"query cut to its first {len(text)} characters (limit {MAX_QUERY_CHARS})")
    return text, notices


def check_request(k: int, mode: str) -> None:
    if mode not in MODES:
        raise PaperchatError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise PaperchatError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")


@dataclass
class Retrieval:
    """A ranked result plus the evidence used to judge whether anything is relevant at all."""

    query: str
    mode: str
    hits: list[Hit]
    took_ms: float
    notices: list[str] = field(default_factory=list)
    best_similarity: float = 0.0
    term_coverage: float = 0.0
    relevance: float = 0.0
    relevant: bool = True


@dataclass
class Sides:
    """Both sides' evidence on the candidate pool (the union of each side's top `depth`)."""

    lexical: LexicalIndex  # the BM25 index and local copies that `positions` refer to
    ids: list[str]
    positions: np.ndarray  # row of each candidate in `lexical`, -1 if it has none
    bm25: np.ndarray
    vector: np.ndarray
    vectors: np.ndarray
    query_vector: np.ndarray
    bm25_rank: dict[str, int]
    vector_rank: dict[str, int]


class Searcher:
    """Runs queries against a `Store` with the retrieval settings of a `Settings`."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def retrieve(self, query: str, k: int = 10, mode: str | None = None, settings: Settings | None = None) -> Retrieval:
        started = time.perf_counter()
        settings = settings or self.settings
        mode = mode or settings.mode
        check_request(k, mode)
        text, notices = clean_query(query)
        lexical = self.store.lexical()
        terms = lexical.tokenizer.tokens(text)
        sides = self.score_sides(text, terms, max(settings.depth, k))
        fused = self.fuse(sides, mode, settings, terms)
        ranked_positions = sorted((i for i in range(len(sides.ids)) if np.isfinite(fused[i])), key=lambda i: (-fused[i], sides.ids[i]))
        order = ranked_positions[:k]
        papers = self.store.papers([sides.ids[i] for i in order])
        gate_terms = search_terms(text, lexical.tokenizer)
        weights = lexical.idf(sorted(set(terms)))
        hits: list[Hit] = []
        for i in order:
            paper = papers.get(sides.ids[i])
            if paper is not None:  # None: deleted by another writer since the BM25 index was loaded
                snippet = make_snippet(paper.abstract, terms, lexical.tokenizer, weights)
                hits.append(_hit(len(hits) + 1, paper, snippet, float(fused[i]), sides, i))
        best_similarity = float(sides.vector.max()) if sides.vector.size else 0.0
        coverage = _term_coverage(gate_terms, lexical.idf(sorted(set(gate_terms))), [lexical.tokenizer.tokens(h.title + " " + h.abstract) for h in hits[:3]])
        score = relevance(best_similarity, coverage)
        return Retrieval(
            query=text,
            mode=mode,
            hits=hits,
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            notices=notices,
            best_similarity=round(best_similarity, 4),
            term_coverage=round(coverage, 4),
            relevance=round(score, 4),
            relevant=bool(hits) and score >= settings.min_relevance,
        )

    def score_sides(self, text: str, terms: list[str], depth: int) -> Sides:
        """Top `depth` of each side, then exact scores of both sides on their union."""
        lexical = self.store.lexical()
        pending = _BM25_WORKER.submit(_bm25_side, lexical, terms, depth)  # on another core while the query embeds
        query_vector = self.store.embedder.encode_query(text)
        all_bm25, bm25_top = pending.result()
        bm25_ids = [lexical.ids[i] for i in bm25_top]
        vector_ids, _ = self.store.nearest(query_vector, depth)
        union = list(dict.fromkeys(bm25_ids + vector_ids))
        stored = self.store.vectors(union)
        ids = [doc_id for doc_id in union if doc_id in stored]
        vectors = np.stack([stored[doc_id] for doc_id in ids]) if ids else np.zeros((0, query_vector.size), dtype=np.float32)
        positions = lexical.positions(ids)
        bm25 = np.where(positions >= 0, all_bm25[np.maximum(positions, 0)], 0.0).astype(np.float32) if ids else np.zeros(0, dtype=np.float32)
        return Sides(
            lexical=lexical,
            ids=ids,
            positions=positions,
            bm25=bm25,
            vector=lexical.best_passage(query_vector, positions, vectors @ query_vector),
            vectors=vectors,
            query_vector=query_vector,
            bm25_rank={doc_id: rank for rank, doc_id in enumerate(bm25_ids, start=1)},
            vector_rank={doc_id: rank for rank, doc_id in enumerate(vector_ids, start=1)},
        )

    def fuse(self, sides: Sides, mode: str, settings: Settings, terms: list[str]) -> np.ndarray:
        """One score per candidate. Outside a side's own top list a candidate scores -inf in a single-side mode."""
        if not sides.ids:
            return np.zeros(0)
        if mode in ("bm25", "vector"):
            ranks = sides.bm25_rank if mode == "bm25" else sides.vector_rank
            scores = sides.bm25 if mode == "bm25" else sides.vector
            return np.array([scores[i] if doc_id in ranks else -np.inf for i, doc_id in enumerate(sides.ids)])
        if settings.fusion == "rrf":
            rankings = {"bm25": sorted(sides.bm25_rank, key=sides.bm25_rank.get), "vector": sorted(sides.vector_rank, key=sides.vector_rank.get)}
            fused = rrf(rankings, settings.rrf_k, {"bm25": settings.bm25_weight, "vector": settings.vector_weight})
            return np.array([fused.get(doc_id, 0.0) for doc_id in sides.ids])
        base = settings.bm25_weight / ((settings.bm25_weight + settings.vector_weight) or 1.0)
        weight = adaptive_bm25_weight(base, float(sides.vector.max()), settings.adaptive_weight)
        fused = weight * zscore(sides.bm25) + (1 - weight) * zscore(sides.vector)
        if settings.feedback_docs:
            fused = self._feedback(sides, fused, weight, settings, terms)
        if settings.smoothing:
            top = np.argsort(-fused, kind="stable")[: settings.smoothing_docs]
            fused = smooth(fused, sides.vectors @ sides.vectors[top].T, fused[top], settings.smoothing)
        return fused

    def _feedback(self, sides: Sides, fused: np.ndarray, weight: float, settings: Settings, terms: list[str]) -> np.ndarray:
        """Pseudo-relevance feedback from the top fused documents, on both sides, re-scoring the pool."""
        lexical = sides.lexical
        top = np.argsort(-fused, kind="stable")[: settings.feedback_docs]
        weights = feedback_weights(fused[top], settings.feedback_temperature)
        moved = rocchio(sides.query_vector, sides.vectors[top], settings.feedback_vector, weights)
        vector = lexical.best_passage(moved, sides.positions, sides.vectors @ moved)
        bm25 = sides.bm25
        if settings.feedback_terms and settings.feedback_bm25:
            papers = self.store.papers([sides.ids[i] for i in top])
            weighted = [(w, lexical.tokenizer.tokens(papers[sides.ids[i]].text)) for w, i in zip(weights, top) if sides.ids[i] in papers]
            documents = [doc for _, doc in weighted]
            vocabulary = sorted({t for doc in documents for t in doc})
            expansion = expansion_terms(documents, lexical.idf(vocabulary), set(terms), settings.feedback_terms, [w for w, _ in weighted])
            extra = sum(w * lexical.term_scores(t, sides.positions) for t, w in expansion.items()) if expansion else 0.0
            bm25 = bm25 + settings.feedback_bm25 * extra * (sides.positions >= 0)
        return weight * zscore(bm25) + (1 - weight) * zscore(vector)


def _bm25_side(lexical, terms: list[str], depth: int) -> tuple[np.ndarray, np.ndarray]:
    """BM25 scores of every document and the positions of the top `depth`."""
    scores = lexical.scores(terms)
    return scores, top_positions(scores, depth)


def _hit(rank: int, paper: Paper, snippet: str, score: float, sides: Sides, i: int) -> Hit:
    """The `Hit` for candidate `i`: its fused score plus both sides' evidence."""
    return Hit(
        rank=rank,
        id=paper.id,
        title=paper.title,
        snippet=snippet,
        score=round(score, 6),
        bm25=round(float(sides.bm25[i]), 4),
        vector=round(float(sides.vector[i]), 4),
        bm25_rank=sides.bm25_rank.get(paper.id),
        vector_rank=sides.vector_rank.get(paper.id),
        citation=Citation(paper.title, paper.url, paper.pages, paper.dates),
        abstract=paper.abstract,
        metadata={"code_links": paper.code_links},
    )


def _term_coverage(terms: list[str], weights: dict[str, float], documents: list[list[str]]) -> float:
    """IDF-weighted share of the query's terms found in the best document among `documents`."""
    distinct = set(terms)
    total = sum(weights.get(t, 0.0) for t in distinct)
    if not total or not documents:
        return 0.0
    return max(sum(weights.get(t, 0.0) for t in distinct.intersection(doc)) for doc in documents) / total
