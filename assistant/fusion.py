"""Rank fusion: pure functions from per-side rankings or scores to one fused score per document.

`rrf` is reciprocal rank fusion (Cormack et al., 2009): sum of weight / (k + rank).
`convex` is a weighted sum of per-side scores after normalising each side over the
candidate pool, so that a side whose scores are flat (it cannot tell candidates apart)
contributes little, while RRF would still hand out its full rank-based votes.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

NORMALISERS = ("minmax", "zscore")


def rrf(rankings: Mapping[str, Sequence[str]], k: float = 60.0, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Reciprocal rank fusion: score(d) = sum over sides of weight / (k + rank of d on that side), ranks from 1."""
    fused: dict[str, float] = {}
    for side, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(side, 1.0)
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (k + rank)
    return fused


def normalise(scores: Mapping[str, float], method: str = "minmax") -> dict[str, float]:
    """Scale one side's scores over the candidate pool: min-max to [0, 1], or z-scores."""
    if not scores:
        return {}
    values = list(scores.values())
    if method == "minmax":
        low, high = min(values), max(values)
        span = high - low
        return {d: (s - low) / span if span > 0 else 0.0 for d, s in scores.items()}
    if method == "zscore":
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return {d: (s - mean) / std if std > 0 else 0.0 for d, s in scores.items()}
    raise ValueError(f"unknown normaliser {method!r}; choose one of {', '.join(NORMALISERS)}")


def convex(
    scores: Mapping[str, Mapping[str, float]],
    weights: Mapping[str, float],
    method: str = "zscore",
    missing: float | None = None,
) -> dict[str, float]:
    """Weighted sum of normalised per-side scores over the union of candidates.

    A document a side did not score gets that side's lowest normalised value (or `missing`).
    """
    candidates = {doc_id for side in scores.values() for doc_id in side}
    fused = {doc_id: 0.0 for doc_id in candidates}
    for side, side_scores in scores.items():
        normed = normalise(side_scores, method)
        floor = missing if missing is not None else (min(normed.values()) if normed else 0.0)
        weight = weights.get(side, 1.0)
        for doc_id in candidates:
            fused[doc_id] += weight * normed.get(doc_id, floor)
    return fused


def ranked(fused: Mapping[str, float]) -> list[tuple[str, float]]:
    """Best first; ties broken by id so that results are deterministic."""
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
