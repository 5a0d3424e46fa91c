"""The search pipeline: query -> BM25 and vector sides -> fusion -> snippets -> `Hit`s.

Both sides are scored on the union of their candidates (BM25 scores every document;
cosine similarities of BM25-only candidates come from their stored vectors), so each
hit explains itself with a real score on both sides, and fusion never has to guess.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from assistant.chat import relevance, search_terms
from assistant.fusion import convex, ranked, rrf
from assistant.hits import Citation, Hit
from assistant.settings import MODES, Settings
from assistant.snippets import make_snippet
from index.errors import PaperchatError
from index.store import Store

MAX_QUERY_CHARS = 2000
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
    bm25: dict[str, float]
    vector: dict[str, float]
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
        terms = search_terms(text, lexical.tokenizer) if settings.drop_chat_filler else lexical.tokenizer.tokens(text)
        depth = max(settings.depth, k)
        sides = self.score_sides(text, terms, depth)
        fused = self.fuse(sides, mode, settings)
        top = ranked(fused)[:k]
        papers = self.store.papers([doc_id for doc_id, _ in top])
        weights = lexical.idf(sorted(set(terms)))
        hits = []
        for doc_id, score in top:
            paper = papers.get(doc_id)
            if paper is None:  # deleted by another writer since the BM25 index was loaded
                continue
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    id=doc_id,
                    title=paper.title,
                    snippet=make_snippet(paper.abstract, terms, lexical.tokenizer, weights),
                    score=round(float(score), 6),
                    bm25=_rounded(sides.bm25.get(doc_id)),
                    vector=_rounded(sides.vector.get(doc_id)),
                    bm25_rank=sides.bm25_rank.get(doc_id),
                    vector_rank=sides.vector_rank.get(doc_id),
                    citation=Citation(paper.title, paper.url, paper.pages, paper.dates),
                    abstract=paper.abstract,
                    metadata={"code_links": paper.code_links},
                )
            )
        best_similarity = max(sides.vector.values(), default=0.0)
        coverage = _term_coverage(terms, weights, [lexical.tokenizer.tokens(h.title + " " + h.abstract) for h in hits[:3]])
        return Retrieval(
            query=text,
            mode=mode,
            hits=hits,
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            notices=notices,
            best_similarity=round(float(best_similarity), 4),
            term_coverage=round(coverage, 4),
            relevance=round(relevance(best_similarity, coverage), 4),
            relevant=bool(hits) and relevance(best_similarity, coverage) >= settings.min_relevance,
        )

    def score_sides(self, text: str, terms: list[str], depth: int) -> Sides:
        lexical = self.store.lexical()
        all_bm25 = lexical.scores(terms)
        top_positions, _ = lexical.search(terms, depth) if all_bm25.size else (np.zeros(0, dtype=np.int64), None)
        bm25_ids = [lexical.ids[i] for i in top_positions]
        query_vector = self.store.embedder.encode_query(text)
        vector_ids, similarities = self.store.nearest(query_vector, depth)
        vector = {doc_id: float(s) for doc_id, s in zip(vector_ids, similarities)}
        missing = [doc_id for doc_id in bm25_ids if doc_id not in vector]
        for doc_id, stored in self.store.vectors(missing).items():
            vector[doc_id] = float(np.dot(stored, query_vector))
        candidates = list(dict.fromkeys(bm25_ids + vector_ids))
        bm25 = {}
        for doc_id in candidates:
            position = lexical.position(doc_id)
            bm25[doc_id] = float(all_bm25[position]) if position is not None else 0.0
        return Sides(
            bm25=bm25,
            vector=vector,
            bm25_rank={doc_id: rank for rank, doc_id in enumerate(bm25_ids, start=1)},
            vector_rank={doc_id: rank for rank, doc_id in enumerate(vector_ids, start=1)},
        )

    @staticmethod
    def fuse(sides: Sides, mode: str, settings: Settings) -> dict[str, float]:
        if mode == "bm25":
            return {doc_id: sides.bm25[doc_id] for doc_id in sides.bm25_rank}
        if mode == "vector":
            return {doc_id: sides.vector[doc_id] for doc_id in sides.vector_rank}
        weights = {"bm25": settings.bm25_weight, "vector": settings.vector_weight}
        if settings.fusion == "rrf":
            rankings = {
                "bm25": sorted(sides.bm25_rank, key=sides.bm25_rank.get),
                "vector": sorted(sides.vector_rank, key=sides.vector_rank.get),
            }
            return rrf(rankings, settings.rrf_k, weights)
        return convex({"bm25": sides.bm25, "vector": sides.vector}, weights, settings.normaliser)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _term_coverage(terms: list[str], weights: dict[str, float], documents: list[list[str]]) -> float:
    """IDF-weighted share of the query's terms found in the best document among `documents`."""
    distinct = set(terms)
    total = sum(weights.get(t, 0.0) for t in distinct)
    if not total or not documents:
        return 0.0
    return max(sum(weights.get(t, 0.0) for t in distinct.intersection(doc)) for doc in documents) / total
