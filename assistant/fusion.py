"""Rank fusion: pure functions from per-side rankings or scores to one fused score per document.

`rrf` is reciprocal rank fusion (Cormack et al., 2009): sum of weight / (k + rank).
The default hybrid is a convex combination of z-scored side scores over the candidate
pool, with a per-query weight (`adaptive_bm25_weight`), pseudo-relevance feedback on both
sides (`rocchio`, `expansion_terms`) and cluster smoothing (`smooth`); eval/README.md
records the study behind each piece.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from paperchat.index.bm25 import DocumentTerms


def rrf(
    rankings: Mapping[str, Sequence[str]], k: float = 60.0, weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Reciprocal rank fusion: score(d) = sum over sides of weight / (k + rank of d on that side), ranks from 1."""
    fused: dict[str, float] = {}
    for side, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(side, 1.0)
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (k + rank)
    return fused


def zscore(values: np.ndarray) -> np.ndarray:
    std = float(values.std()) if values.size else 0.0
    return (values - values.mean()) / std if std > 0 else np.zeros_like(values)


def adaptive_bm25_weight(base: float, best_similarity: float, slope: float, centre: float = 0.5) -> float:
    """Lean on the vector side when its best match is close (high cosine), on BM25 when it is not.

    On the judged sets the dense side wins exactly on queries whose nearest abstract is
    close; a flat weight cannot know that per query.
    """
    return float(np.clip(base - slope * (best_similarity - centre), 0.1, 0.9))


def feedback_weights(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Weights of the feedback documents: a softmax of their fused scores, summing to 1.

    RM3 weights each feedback document by how well it matches the query (P(Q|D)); the fused
    score is our log-scale stand-in, so a clear winner counts more than a marginal fifth.
    A higher `temperature` flattens the weights towards a plain mean.
    """
    if scores.size == 0:
        return scores
    exponent = np.exp((scores - scores.max()) / temperature)
    return exponent / exponent.sum()


def rocchio(query: np.ndarray, feedback: np.ndarray, beta: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Query vector moved towards the (weighted) mean of the feedback documents' vectors, re-normalised."""
    if feedback.size == 0 or beta == 0:
        return query
    centroid = feedback.mean(axis=0) if weights is None else weights @ feedback
    moved = query + beta * centroid
    norm = float(np.linalg.norm(moved))
    return moved / norm if norm > 0 else query


def expansion_terms(
    documents: Sequence[DocumentTerms],
    exclude: set[str],
    count: int,
    weights: Sequence[float] | None = None,
) -> dict[str, float]:
    """RM3-style expansion: terms weighted by document weight x length-normalised frequency x IDF, summed over the
    feedback documents; the top `count` (ties by term), top weight 1. One array operation over the documents' terms,
    not a loop over them."""
    if not documents:
        return {}
    terms = np.concatenate([document.terms for document in documents])
    values = np.concatenate(
        [
            weight * document.counts / document.length * document.idf
            for weight, document in zip(weights if weights is not None else [1.0] * len(documents), documents)
        ]
    )
    distinct, which = np.unique(terms, return_inverse=True)  # sorted: ties below go by term
    sums = np.bincount(which, weights=values, minlength=len(distinct))
    kept = np.flatnonzero(~np.isin(distinct, list(exclude))) if exclude else np.arange(len(distinct))
    best = kept[np.argsort(-sums[kept], kind="stable")[:count]]
    top = float(sums[best[0]]) if len(best) and sums[best[0]] > 0 else 1.0
    return {str(distinct[i]): float(sums[i]) / top for i in best.tolist() if sums[i] > 0}


def rank_order(scores: np.ndarray, ids: Sequence[str]) -> list[int]:
    """Positions of the finite `scores`, best first, equal scores by id (so a ranking never depends on the order
    the candidates came in)."""
    finite = np.flatnonzero(np.isfinite(scores))
    return finite[np.lexsort((np.asarray(ids, dtype=str)[finite], -scores[finite]))].tolist()


def smooth(scores: np.ndarray, similarity_to_top: np.ndarray, top_scores: np.ndarray, strength: float) -> np.ndarray:
    """Cluster-hypothesis smoothing: add each candidate's similarity to the top documents, weighted by their scores."""
    weights = np.maximum(top_scores, 0)
    if strength == 0 or weights.sum() <= 0:
        return scores
    return scores + strength * (similarity_to_top @ weights) / weights.sum()


# Cosines between a follow-up's query vector and its context's over which the context fades, and what it keeps.
CONTEXT_NEAR = (0.2, 0.4)
CONTEXT_FLOOR = 0.25


def context_share(cosine: float, near: tuple[float, float] = CONTEXT_NEAR, floor: float = CONTEXT_FLOOR) -> float:
    """The share of its weight the previous question keeps as a follow-up's context, from the cosine between the
    message's and the context's query vectors.

    A message far from the previous question ("where do they typically fail?") says nothing of its topic: the
    context counts whole. A message close to it already carries that topic itself (a sibling question, "what if
    you prune the fine-tuning deltas rather than the weights?"): the context would count the old topic twice and
    drown what the message adds, so its weight fades linearly to `floor` between the cosines `near`. Chosen on
    the dev half of the judged chats (eval/README.md): lowering the context for far messages instead lost there.
    """
    start, end = near
    closeness = min(max((cosine - start) / (end - start), 0.0), 1.0)
    return 1.0 - (1.0 - floor) * closeness
