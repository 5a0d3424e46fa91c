"""The search pipeline: query -> BM25 and vector sides -> fusion -> snippets -> `Hit`s.

Both sides are scored on the union of their candidates (BM25 scores every document;
cosine similarities of BM25-only candidates come from their stored vectors), so each
hit explains itself with a real score on both sides, and fusion never has to guess.
A document's vector-side score is MaxP: the best cosine of its own vector and of its
passages' (`index/passages.py`), so the endings of long abstracts count too. A query reads one
`Snapshot` from start to end; `bm25` mode never embeds the query.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from paperchat.chat import Formulation
from paperchat.filters import Filter
from paperchat.fusion import (
    adaptive_bm25_weight,
    context_share,
    expansion_terms,
    feedback_weights,
    rank_order,
    rocchio,
    rrf,
    smooth,
    zscore,
)
from paperchat.gate import CONCEPT_DOCUMENTS, Concept, Evidence, concepts_by_meaning, evidence, key_concepts, relevance
from paperchat.hits import Hit, citation_of
from paperchat.index.bm25 import top_positions
from paperchat.index.errors import PaperchatError
from paperchat.index.papers import Paper
from paperchat.index.passages import Lexicon, PassageBlock
from paperchat.index.snapshot import Snapshot
from paperchat.index.store import Store
from paperchat.index.stored import RESIDENT_ROWS
from paperchat.index.tokenize import CONTROL_CHARACTERS, without_lone_surrogates
from paperchat.settings import MODES, Settings
from paperchat.snippets import make_snippet

MAX_QUERY_CHARS = 2000
_BM25_WORKER = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="paperchat-bm25")
MAX_K = 1000
# Documents from which BM25 runs on the worker thread while the query embeds. Below, it takes about a millisecond
# or less, and handing it to another thread (which then holds the GIL the embedding's Python needs) cost as much:
# whole search on the bundled corpus 10.3 ms inline against 10.9 ms handed over (four alternating rounds); level at
# 10k and 100k.
BM25_ON_WORKER_ROWS = 100_000
EXACT_SEARCH_LIMIT = RESIDENT_ROWS  # documents: the snapshot holds the vectors of indexes this small as float32


def clean_query(query: str) -> tuple[str, list[str]]:
    """Normalise a user query: control characters become spaces; unpaired surrogates (a terminal's undecodable bytes)
    become U+FFFD and over-long queries are cut, each with a notice."""
    if not isinstance(query, str):
        raise PaperchatError("the query must be text")
    notices: list[str] = []
    query, replaced = without_lone_surrogates(query)
    if replaced:
        notices.append(f"{replaced} character(s) that are not valid Unicode replaced with \ufffd")
    text = " ".join(CONTROL_CHARACTERS.sub(" ", query).split())
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
    """A ranked result plus the evidence used to judge whether anything is relevant at all.

    `hits` is what every surface shows: empty when the relevance gate decided that nothing is
    relevant (unless the caller turned the gate off); `closest` always holds the ranked papers.
    """

    query: str
    mode: str
    hits: list[Hit]
    took_ms: float
    notices: list[str] = field(default_factory=list)
    relevance: float = 0.0
    relevant: bool = True
    closest: list[Hit] = field(default_factory=list)
    formulations: list[Formulation] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    evidence: dict[str, float] = field(default_factory=dict)
    where: Filter | None = None

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "mode": self.mode,
            "took_ms": self.took_ms,
            "relevant": self.relevant,
            "relevance": self.relevance,
            "filter": asdict(self.where) if self.where else None,
            "covered": self.covered,
            "missing": self.missing,
            "evidence": self.evidence,
            "searched": [asdict(f) for f in self.formulations],
            "hits": [h.to_dict() for h in self.hits],
        }


@dataclass
class Sides:
    """Both sides' evidence on the candidate pool (the union of each side's top `depth`)."""

    snapshot: Snapshot  # what `positions` refer to
    ids: list[str]
    positions: np.ndarray  # row of each candidate in `snapshot`
    bm25: np.ndarray
    vector: np.ndarray | None  # None in bm25 mode: the query was not embedded
    vectors: np.ndarray
    passages: PassageBlock  # the candidates' passages, for MaxP against the query vector and feedback's
    query_vector: np.ndarray | None
    weights: list[float]  # what each formulation was searched with (`searched_weights`)
    bm25_rank: dict[str, int]
    vector_rank: dict[str, int]


class Searcher:
    """Runs queries against a `Store` with the retrieval settings of a `Settings`."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def retrieve(
        self,
        query: str | Sequence[Formulation],
        k: int = 10,
        mode: str | None = None,
        settings: Settings | None = None,
        gate: bool = True,
        where: Filter | None = None,
    ) -> Retrieval:
        """Ranked hits for `query` (a text, or weighted formulations of one question), judged by the
        relevance gate (the one place that decides "nothing relevant"); with `gate` off the hits
        are listed whatever the judgement. `where` keeps only matching papers, on both sides, before fusion."""
        started = time.perf_counter()
        settings = settings or self.settings
        mode = mode or settings.mode
        check_request(k, mode)
        formulations, notices = _clean_formulations(query)
        text = formulations[0].text
        snapshot = self.store.snapshot()
        tokenizer = snapshot.tokenizer
        weighted = [(tokenizer.tokens(f.text), f.weight) for f in formulations]
        terms = list(dict.fromkeys(t for group, _ in weighted for t in group))
        rows = np.flatnonzero(where.mask(snapshot.columns)) if where is not None else None
        sides = self.score_sides(
            snapshot, formulations, weighted, max(settings.depth, k), embed=mode != "bm25", rows=rows
        )
        fused = self.fuse(sides, mode, settings, terms)
        ranked_positions = rank_order(fused, sides.ids)
        weights = snapshot.bm25.idf(sorted(set(terms)))
        hits = []
        for i in ranked_positions[:k]:
            paper = snapshot.paper(int(sides.positions[i]))
            snippet = make_snippet(paper.abstract, terms, tokenizer, weights)
            hits.append(_hit(len(hits) + 1, paper, snippet, float(fused[i]), sides, i))
        found = self.judge(snapshot, formulations, sides, sides.positions[ranked_positions[:CONCEPT_DOCUMENTS]])
        probability = relevance(found)
        relevant = bool(hits) and probability >= settings.min_relevance
        return Retrieval(
            query=text,
            mode=mode,
            hits=hits if relevant or not gate else [],
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            notices=notices,
            relevance=round(probability, 4),
            relevant=relevant,
            closest=hits,
            formulations=[replace(f, weight=round(w, 3)) for f, w in zip(formulations, sides.weights)],
            covered=list(found.covered),
            missing=list(found.uncovered),
            evidence={name: round(value, 4) for name, value in found.features().items()},
            where=where,
        )

    def judge(self, snapshot: Snapshot, formulations: Sequence[Formulation], sides: Sides, top: np.ndarray) -> Evidence:
        """The relevance gate's evidence (`paperchat.gate`): the question's concepts against the top abstracts
        (`top`: the rows of the first CONCEPT_DOCUMENTS papers of the whole ranking, so the judgement does not depend
        on k).

        A concept no top abstract holds by words is looked for by meaning, except in bm25 mode
        (which never embeds): `meaning`."""
        tokenizer = snapshot.tokenizer
        question = key_concepts(formulations[0].text, tokenizer)
        context = [c for f in formulations[1:] for c in key_concepts(f.text, tokenizer, f.weight)]
        idf = snapshot.bm25.idf(sorted({t for c in question + context for t in c.terms}))
        rows = [int(row) for row in top[:CONCEPT_DOCUMENTS]]
        documents = [snapshot.term_set(row) for row in rows]
        similarity = None if sides.vector is None else float(sides.vector.max()) if sides.vector.size else 0.0
        asked = sorted({t for c in question for t in c.terms})
        return evidence(
            similarity,
            question,
            context,
            idf,
            documents,
            snapshot.bm25.known(asked),
            snapshot.bm25.max_idf,
            self.meaning(snapshot, question, rows, documents) if sides.vector is not None else None,
        )

    def meaning(
        self, snapshot: Snapshot, question: list[Concept], rows: list[int], documents: list[frozenset[str]]
    ) -> dict[int, set[int]]:
        """Question concepts that no top abstract (the papers at `rows`, whose terms are `documents`) holds by words,
        mapped to the abstracts that express them by meaning (`paperchat.gate.concepts_by_meaning`, against the words
        of each abstract in the snapshot's lexicon; nothing when the snapshot has no lexicon). Nothing of the
        abstracts is embedded here."""
        lexicon = snapshot.lexicon
        if not len(lexicon):
            return {}
        return concepts_by_meaning(
            question,
            documents,
            lambda j: np.asarray(lexicon.vectors[snapshot.word_rows(rows[j])], dtype=np.float32),
            lambda words: self._embed_words(lexicon, words),
        )

    def _embed_words(self, lexicon: Lexicon, words: list[str]) -> np.ndarray:
        """The vectors of a question's words: the lexicon's when an abstract of the index has the word (it was
        embedded alone at build time), else `encode_query` (ONNX Runtime, cached; ~4 ms a word on 2 cores; not one
        `encode` batch: 15-20 ms for up to five words, and it imports torch, seconds, in a process that only
        searches)."""
        rows = lexicon.row_of_word()
        return np.vstack(
            [
                np.asarray(lexicon.vectors[rows[word]], dtype=np.float32)
                if word in rows
                else self.store.embedder.encode_query(word)
                for word in words
            ]
        )

    def score_sides(
        self,
        snapshot: Snapshot,
        formulations: Sequence[Formulation],
        weighted: list[tuple[list[str], float]],
        depth: int,
        embed: bool = True,
        rows: np.ndarray | None = None,
    ) -> Sides:
        """Top `depth` of each side, then exact scores of both sides on their union (BM25 alone without `embed`).

        Several formulations make one query: BM25 scores add up weighted, and the query vector is
        the normalised weighted sum of the formulations' vectors, the context's weight scaled down the closer the
        message is from it (`searched_weights`; not in bm25 mode, which never embeds). With `rows` (a filter's matching
        papers) both sides only ever see those rows.
        """
        weighed = embed and any(f.role == "context" for f in formulations)  # weights known after the embedding only
        fixed = None if weighed else searched_weights(formulations, None)
        pending = (  # on another core while the query embeds, where BM25 takes longer than handing it over
            _BM25_WORKER.submit(_bm25_ranked, snapshot, weighted, fixed, depth, rows)
            if len(snapshot) >= BM25_ON_WORKER_ROWS
            else None
        )
        vectors = self._formulation_vectors(formulations) if embed else None
        weights = searched_weights(formulations, vectors)
        query_vector = _combine(vectors, weights) if vectors is not None else None
        ranked = True  # whether vector_top is in MaxP order already
        if not embed:  # the vector side first: BM25 may still be running on the other core
            vector_top = np.zeros(0, dtype=np.int64)
        elif rows is not None:
            vector_top = snapshot.nearest(query_vector, depth, rows)[0] if len(rows) else np.zeros(0, dtype=np.int64)
        else:
            vector_top, ranked = self._vector_candidates(snapshot, query_vector, depth)
        scored, side = pending.result() if pending is not None else _bm25_ranked(snapshot, weighted, fixed, depth, rows)
        all_bm25, bm25_top = side or _bm25_side(snapshot, scored, weights, depth, rows)
        positions = np.fromiter(dict.fromkeys(np.concatenate([bm25_top, vector_top]).tolist()), dtype=np.int64)
        ids = snapshot.ids.at(positions)
        vectors = (
            np.asarray(snapshot.vectors[positions], dtype=np.float32)
            if len(positions)
            else np.zeros((0, snapshot.vectors.shape[1]), dtype=np.float32)  # the model's dimension would load torch
        )
        passages = snapshot.passage_block(positions)
        vector = passages.best(query_vector, vectors @ query_vector) if embed else None
        if not ranked:  # HNSW's neighbours, in MaxP order on the passages just gathered for the whole pool
            at = {position: i for i, position in enumerate(positions.tolist())}
            held = np.fromiter((at[p] for p in vector_top.tolist()), dtype=np.int64, count=len(vector_top))
            vector_top = vector_top[np.argsort(-vector[held], kind="stable")]
        return Sides(
            snapshot=snapshot,
            ids=ids,
            positions=positions,
            bm25=all_bm25[positions].astype(np.float32) if len(positions) else np.zeros(0, dtype=np.float32),
            vector=vector,
            vectors=vectors,
            passages=passages,
            query_vector=query_vector,
            weights=weights,
            bm25_rank={doc_id: rank for rank, doc_id in enumerate(snapshot.ids.at(bm25_top), start=1)},
            vector_rank={doc_id: rank for rank, doc_id in enumerate(snapshot.ids.at(vector_top), start=1)},
        )

    def _formulation_vectors(self, formulations: Sequence[Formulation]) -> np.ndarray:
        """The query vector of each formulation, one row each."""
        return np.vstack([self.store.embedder.encode_query(f.text) for f in formulations])

    def nearest(self, snapshot: Snapshot, vector: np.ndarray, k: int) -> np.ndarray:
        """Rows of the `k` nearest documents by MaxP cosine (`Snapshot.best_passage`)."""
        rows, ranked = self._vector_candidates(snapshot, vector, k)
        if ranked or not len(rows):
            return rows
        own = np.asarray(snapshot.vectors[rows], dtype=np.float32) @ vector
        similarities = snapshot.best_passage(vector, rows, own)
        return rows[np.argsort(-similarities, kind="stable")]

    def _vector_candidates(self, snapshot: Snapshot, vector: np.ndarray, k: int) -> tuple[np.ndarray, bool]:
        """Rows of the `k` nearest documents, and whether they are in MaxP order already.

        Up to EXACT_SEARCH_LIMIT documents the snapshot's vectors are scanned exactly (MaxP order): cheaper
        than a Chroma round trip there, and free of HNSW's approximation, which on the small
        benchmarks dropped true neighbours from the candidate pool. Larger collections take
        Chroma's HNSW neighbours by document vector (papers written after the snapshot was taken are left out), for
        the caller to order by MaxP on passages it gathers anyway.
        """
        if len(snapshot) <= EXACT_SEARCH_LIMIT:
            return (snapshot.nearest(vector, k)[0] if len(snapshot) else np.zeros(0, dtype=np.int64)), True
        ids, _ = self.store.repository.nearest(vector, min(k, len(snapshot)))
        positions = snapshot.positions(ids)
        return positions[positions >= 0], False

    def fuse(self, sides: Sides, mode: str, settings: Settings, terms: list[str]) -> np.ndarray:
        """One score per candidate. Outside a side's own top list a candidate scores -inf in a single-side mode."""
        if not sides.ids:
            return np.zeros(0)
        if mode in ("bm25", "vector"):
            ranks = sides.bm25_rank if mode == "bm25" else sides.vector_rank
            scores = sides.bm25 if mode == "bm25" else sides.vector
            return np.array([scores[i] if doc_id in ranks else -np.inf for i, doc_id in enumerate(sides.ids)])
        if settings.fusion == "rrf":
            rankings = {
                "bm25": sorted(sides.bm25_rank, key=sides.bm25_rank.get),
                "vector": sorted(sides.vector_rank, key=sides.vector_rank.get),
            }
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

    def _feedback(
        self, sides: Sides, fused: np.ndarray, weight: float, settings: Settings, terms: list[str]
    ) -> np.ndarray:
        """Pseudo-relevance feedback from the top fused documents, on both sides, re-scoring the pool."""
        snapshot = sides.snapshot
        top = np.argsort(-fused, kind="stable")[: settings.feedback_docs]
        weights = feedback_weights(fused[top], settings.feedback_temperature)
        moved = rocchio(sides.query_vector, sides.vectors[top], settings.feedback_vector, weights)
        vector = sides.passages.best(moved, sides.vectors @ moved)
        bm25 = sides.bm25
        if settings.feedback_terms and settings.feedback_bm25:
            documents = [snapshot.document_terms(int(sides.positions[i])) for i in top]
            expansion = expansion_terms(documents, set(terms), settings.feedback_terms, list(weights))
            bm25 = bm25 + settings.feedback_bm25 * snapshot.bm25.weighted_term_scores(expansion, sides.positions)
        return weight * zscore(bm25) + (1 - weight) * zscore(vector)


def _clean_formulations(query: str | Sequence[Formulation]) -> tuple[list[Formulation], list[str]]:
    """Cleaned formulations (the first is what the user asked) and any notices."""
    formulations = [Formulation(query)] if isinstance(query, str) else list(query)
    if not formulations:
        raise PaperchatError("the query is empty; type a question or some keywords")
    cleaned, notices = [], []
    for formulation in formulations:
        text, said = clean_query(formulation.text)
        cleaned.append(Formulation(text, formulation.weight, formulation.role))
        notices += [n for n in said if n not in notices]
    return cleaned, notices


def searched_weights(formulations: Sequence[Formulation], vectors: np.ndarray | None) -> list[float]:
    """The weight each formulation is searched with: its own, except the context's, scaled by
    `paperchat.fusion.context_share` of the cosine between the message's (the first) and the context's
    query vectors (`vectors`, one row each; None when the query was not embedded: weights unchanged)."""
    weights = [f.weight for f in formulations]
    if vectors is None:
        return weights
    for i, formulation in enumerate(formulations[1:], start=1):
        if formulation.role == "context":
            weights[i] *= context_share(float(vectors[0] @ vectors[i]))
    return weights


def _combine(vectors: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """The query vector of several formulations: the normalised weighted sum of theirs (the first's if that is 0)."""
    if len(vectors) == 1:
        return vectors[0]
    combined = np.asarray(weights, dtype=np.float64) @ vectors
    norm = float(np.linalg.norm(combined))
    return (combined / norm).astype(np.float32) if norm > 0 else vectors[0]


def _bm25_scores(snapshot: Snapshot, weighted: list[tuple[list[str], float]]) -> list[np.ndarray]:
    """BM25 scores of every document for each formulation's terms, one array each."""
    return [snapshot.bm25.scores(terms) for terms, _ in weighted]


def _bm25_ranked(
    snapshot: Snapshot,
    weighted: list[tuple[list[str], float]],
    weights: Sequence[float] | None,
    depth: int,
    rows: np.ndarray | None,
) -> tuple[list[np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """Each formulation's BM25 scores and, when the `weights` they add up with are known before the query embeds (no
    context to weigh against the message), the weighted side (`_bm25_side`) too: on the worker, its top is off the
    query's path."""
    scored = _bm25_scores(snapshot, weighted)
    return scored, _bm25_side(snapshot, scored, weights, depth, rows) if weights is not None else None


def _bm25_side(
    snapshot: Snapshot,
    scored: list[np.ndarray],
    weights: Sequence[float],
    depth: int,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted BM25 scores of every document (`scored`: each formulation's, from `_bm25_scores`) and the positions
    of the top `depth` (among `rows` only, when given)."""
    scores = sum(weight * side for side, weight in zip(scored, weights)) if len(scored) > 1 else scored[0]
    if rows is not None:
        kept = np.zeros_like(scores)
        kept[rows] = scores[rows]
        scores = kept
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
        vector=None if sides.vector is None else round(float(sides.vector[i]), 4),
        bm25_rank=sides.bm25_rank.get(paper.id),
        vector_rank=sides.vector_rank.get(paper.id),
        citation=citation_of(paper),
        abstract=paper.abstract,
        metadata={"code_links": paper.code_links},
    )
