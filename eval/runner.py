"""Run retrieval variants over judged datasets and score them with ranx.

A *variant* is a mode plus optional settings overrides (e.g. plain RRF for comparison).
Runs are ordinary TREC-style dicts (query id -> doc id -> score), so runs written by
other systems are scored exactly the same way (`score_runs`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from paperchat.api import Assistant
from paperchat.eval.datasets import Dataset, Query
from paperchat.index.errors import PaperchatError

METRICS = ["ndcg@10", "recall@5", "recall@10", "recall@100", "mrr@10", "map@100"]
RUN_DEPTH = 100


@dataclass(frozen=True)
class Variant:
    """A mode plus settings overrides; `gate`: what a user sees (no hits when the relevance gate declines)."""

    name: str
    mode: str
    overrides: tuple[tuple[str, object], ...] = ()
    gate: bool = False


DEFAULT_VARIANTS = (
    Variant("bm25", "bm25"),
    Variant("vector", "vector"),
    Variant("hybrid", "hybrid"),
    Variant("rrf-k60", "hybrid", (("fusion", "rrf"), ("rrf_k", 60.0), ("bm25_weight", 1.0), ("vector_weight", 1.0))),
    Variant("hybrid-gated", "hybrid", gate=True),
)


@dataclass
class VariantResult:
    variant: str
    metrics: dict[str, float]
    per_query: dict[str, float]  # nDCG@10 per query, for wins and losses
    latency_ms: list[float] = field(default_factory=list)
    run: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def p50(self) -> float:
        return float(np.percentile(self.latency_ms, 50)) if self.latency_ms else 0.0

    @property
    def p95(self) -> float:
        return float(np.percentile(self.latency_ms, 95)) if self.latency_ms else 0.0


def score_run(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean metrics and per-query nDCG@10; a query with no results counts as zero, not as missing."""
    from ranx import (
        Qrels,
        Run,
        evaluate,
    )  # here: with scipy it takes 2 s to import, which `paperchat --help` must not pay

    if not any(qrels.values()):
        raise PaperchatError(
            "the relevance judgments hold no relevant document (no line with a positive grade): nothing to score"
        )
    complete = {qid: (run.get(qid) or {"__no_result__": 0.0}) for qid in qrels}
    ranx_qrels, ranx_run = Qrels.from_dict(qrels), Run.from_dict(complete)
    means = evaluate(ranx_qrels, ranx_run, METRICS, make_comparable=True)
    per_query = evaluate(ranx_qrels, ranx_run, "ndcg@10", return_mean=False, make_comparable=True)
    return {m: float(v) for m, v in means.items()}, {qid: float(v) for qid, v in zip(ranx_run.keys(), per_query)}


def run_variant(
    assistant: Assistant, queries: list[Query], variant: Variant, progress: bool = True
) -> tuple[dict[str, dict[str, float]], list[float]]:
    from tqdm.auto import tqdm

    overrides = dict(variant.overrides)
    run: dict[str, dict[str, float]] = {}
    latency: list[float] = []
    for query in tqdm(queries, desc=f"  {variant.name}", unit="q", disable=not progress, file=sys.stderr, leave=False):
        started = time.perf_counter()
        hits = assistant.retrieve(
            query.text, RUN_DEPTH, variant.mode, gate=variant.gate, history=query.history, **overrides
        ).hits
        latency.append((time.perf_counter() - started) * 1000)
        run[query.id] = {hit.id: float(RUN_DEPTH - hit.rank + 1) for hit in hits}
    return run, latency


def evaluate_dataset(
    assistant: Assistant, dataset: Dataset, variants=DEFAULT_VARIANTS, progress: bool = True
) -> list[VariantResult]:
    results = []
    for variant in variants:
        run, latency = run_variant(assistant, dataset.queries, variant, progress)
        metrics, per_query = score_run(dataset.qrels, run)
        results.append(VariantResult(variant.name, metrics, per_query, latency, run))
    return results


def wins_and_losses(results: list[VariantResult], against: str = "hybrid") -> dict[str, dict[str, list[str]]]:
    """For each other variant: the queries where `against` is better (wins) or worse (losses) on nDCG@10."""
    base = next((r for r in results if r.variant == against), None)
    if base is None:
        return {}
    table = {}
    for other in results:
        if other.variant == against:
            continue
        wins = sorted(q for q, v in base.per_query.items() if v > other.per_query.get(q, 0.0) + 1e-9)
        losses = sorted(q for q, v in base.per_query.items() if v + 1e-9 < other.per_query.get(q, 0.0))
        table[other.variant] = {"wins": wins, "losses": losses}
    return table
