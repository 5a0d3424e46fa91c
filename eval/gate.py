"""The relevance gate, measured and fitted: how often it answers answerable questions and declines
off-topic ones, and the logistic model behind it (`paperchat.gate`).

Fitting uses only the dev half (MD5 of the id even) of the gate sets (near and far misses against
controls) and of the judged sets (every judged question and chat turn is answerable), with 5-fold
cross-validation to report how the fitted model does on questions it did not see.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paperchat.api import Assistant
from paperchat.eval.datasets import (
    BUNDLED_SETS,
    GATE_SETS,
    Dataset,
    Query,
    in_dev_half,
    load_bundled_set,
    load_gate_set,
)

FEATURES = {
    "hybrid": ("similarity", "coverage", "missing", "rarest_missing", "unknown", "follow_up", "length"),
    "lexical": ("coverage", "missing", "rarest_missing", "unknown", "follow_up", "length"),
}
MODES = {"hybrid": "hybrid", "lexical": "bm25"}


def labelled_questions(which: str | None) -> list[tuple[str, Query, bool]]:
    """(set:kind, question, answerable) for every gate and judged question in a half (None: all)."""
    keep = (lambda q: True) if which is None else (lambda q: in_dev_half(q.group) == (which == "dev"))
    found = [
        (f"{name}:{q.kind or 'off-topic'}", q, answerable)
        for name in GATE_SETS
        for q, answerable in load_gate_set(name)
        if keep(q)
    ]
    found += [
        (f"{name}:{q.kind or 'question'}", q, True)
        for name in BUNDLED_SETS
        for q in load_bundled_set(name).queries
        if keep(q)
    ]
    return found


def decisions(
    assistant: Assistant, questions: Sequence[tuple[str, Query, bool]], mode: str = "hybrid", progress: bool = True
) -> list[dict]:
    """The gate's evidence and decision for each question, searched as every surface searches it."""
    from tqdm.auto import tqdm

    rows = []
    for group, query, answerable in tqdm(
        questions, desc=f"gate ({mode})", unit="q", disable=not progress, file=sys.stderr, leave=False
    ):
        result = assistant.retrieve(query.text, 5, mode, history=query.history)
        rows.append(
            {
                "id": query.id,
                "group": group,
                "answerable": answerable,
                "relevant": result.relevant,
                "relevance": result.relevance,
                "features": result.evidence,
                "missing": result.missing,
            }
        )
    return rows


def accuracy(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per set and kind: how many were answered (controls, judged questions) or declined (near and far misses)."""
    table: dict[str, dict[str, int]] = {}
    for row in rows:
        cell = table.setdefault(row["group"], {"questions": 0, "correct": 0})
        cell["questions"] += 1
        cell["correct"] += int(row["relevant"] == row["answerable"])
    return table


def accuracy_text(table: dict[str, dict[str, int]]) -> str:
    return "\n".join(
        f"  {group:28s} {'answered' if not group.endswith(('near', 'far', 'off-topic')) else 'declined'} "
        f"{cell['correct']}/{cell['questions']}"
        for group, cell in sorted(table.items())
    )


def fit(rows: list[dict], features: Sequence[str]) -> tuple[dict, dict[str, dict[str, int]]]:
    """A logistic model over `features`, and the cross-validated (5-fold) accuracy table of that model family."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = np.array([[row["features"][name] for name in features] for row in rows])
    y = np.array([row["answerable"] for row in rows])
    model = LogisticRegression(C=1.0, max_iter=1000)
    held_out = cross_val_predict(
        model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba"
    )[:, 1]
    model.fit(x, y)
    fitted = {
        "coefficients": {name: round(float(c), 4) for name, c in zip(features, model.coef_[0])},
        "intercept": round(float(model.intercept_[0]), 4),
    }
    return fitted, accuracy([{**row, "relevant": bool(p >= 0.5)} for row, p in zip(rows, held_out)])


def fit_gate(
    assistant: Assistant, out: Path, others: Sequence[tuple[Assistant, Dataset]] = (), progress: bool = True
) -> str:
    """Fit both gate models on the dev half, write them to `out` (the format of `paperchat/gate.json`), return a report.

    `others` are judged benchmarks on their own indexes (every query answerable): their dev
    halves teach the gate what answerable questions look like on corpora other than the bundled one.
    """
    questions = labelled_questions("dev")
    elsewhere = [
        (index, [(f"{data.name}:question", q, True) for q in data.queries if in_dev_half(q.group)])
        for index, data in others
    ]
    models, report = {}, []
    for name, features in FEATURES.items():
        rows = decisions(assistant, questions, MODES[name], progress)
        rows += [row for index, asked in elsewhere for row in decisions(index, asked, MODES[name], progress)]
        models[name], table = fit(rows, features)
        report.append(
            f"{name} model {models[name]}; 5-fold cross-validated on {len(rows)} dev questions:\n{accuracy_text(table)}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"note": "fitted by `paperchat eval --fit-gate` on the dev half; see eval/README.md", "models": models},
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    return "\n".join(report)
