"""The relevance gate, pure: does anything in the index answer the question, and if not, what is missing?

A question is split into its content words (chat filler removed), grouped into phrases. A
word is covered when one of the top abstracts holds its term. These signals
then go into a logistic model fitted on the dev half of the judged off-topic and answerable
questions (`paperchat eval --fit-gate`; the coefficients ship in `gate.json`):

- `similarity`: the best MaxP cosine of any paper to the question (absent in bm25 mode);
- `coverage`: the IDF-weighted share of the question's terms found in the best top-3 abstract;
- `missing`: the IDF-weighted share of the question's terms that no top-5 abstract holds;
- `rarest_missing`: the IDF (over its maximum) of the most specific question term no top-5 abstract holds;
- `unknown`: the IDF-weighted share of the question's terms that no abstract in the corpus holds;
- `follow_up`: whether the question came after earlier turns (its context is then part of the evidence);
- `length`: log(1 + number of distinct terms): a long question leaves more of its words unmatched.

A near miss ("graph neural networks for road traffic") shares vocabulary with the corpus, so
its similarity is high; what gives it away is a central concept ("road traffic") that no close
abstract mentions, which is also what the answer then names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from paperchat.chat import content_phrases, search_terms
from paperchat.index.tokenize import Tokenizer

COVERAGE_DOCUMENTS = 3
CONCEPT_DOCUMENTS = 5


@dataclass(frozen=True)
class Concept:
    """A content word of a question, its terms, and the weight of the formulation it came from."""

    word: str
    terms: tuple[str, ...]
    weight: float = 1.0
    phrase: int = 0  # words of one phrase (no stopword or punctuation between them) share this number


def key_concepts(text: str, tokenizer: Tokenizer, weight: float = 1.0) -> list[Concept]:
    """The content words of `text` in order (stopwords, chat filler and back-references removed), grouped into
    phrases."""
    concepts = []
    for number, words in enumerate(content_phrases(text)):
        for word in words:
            terms = tuple(dict.fromkeys(search_terms(word, tokenizer)))
            if terms:
                concepts.append(Concept(word, terms, weight, number))
    return concepts


def coverage(weights: Mapping[str, float], document: set[str]) -> float:
    """Weighted share of the terms (`weights`: term -> weight) that `document` (a set of terms) holds."""
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in document) / total if total else 0.0


@dataclass(frozen=True)
class Evidence:
    """What the gate decides from, and which of the question's concepts the top abstracts cover."""

    similarity: float | None
    coverage: float
    missing: float
    rarest_missing: float
    unknown: float
    follow_up: bool
    length: float
    covered: tuple[str, ...]
    uncovered: tuple[str, ...]

    def features(self) -> dict[str, float]:
        values = {
            "coverage": self.coverage,
            "missing": self.missing,
            "rarest_missing": self.rarest_missing,
            "unknown": self.unknown,
            "follow_up": float(self.follow_up),
            "length": self.length,
        }
        if self.similarity is not None:
            values["similarity"] = self.similarity
        return values


def evidence(
    similarity: float | None,
    question: list[Concept],
    context: list[Concept],
    idf: Mapping[str, float],
    documents: Sequence[set[str]],
    known: set[str],
    max_idf: float,
) -> Evidence:
    """The gate's signals for the question's concepts (and, in a chat, its context's) over the top `documents`.

    `known` holds the question's terms that occur anywhere in the corpus; `max_idf` is the IDF
    of a term no document has.

    `covered` / `uncovered` are the question's own phrases: adjacent words that are covered (or
    not) together, the heaviest uncovered phrase first.
    """
    weights: dict[str, float] = {}
    for concept in question + context:
        for term in concept.terms:
            weights[term] = max(weights.get(term, 0.0), concept.weight * idf.get(term, 0.0))
    best = max((coverage(weights, doc) for doc in documents[:COVERAGE_DOCUMENTS]), default=0.0)
    seen = set().union(*documents[:CONCEPT_DOCUMENTS]) if documents else set()
    total = sum(weights.values())
    missing = sum(w for t, w in weights.items() if t not in seen) / total if total else 1.0
    runs: list[tuple[bool, list[Concept]]] = []
    for concept in question:
        found = any(t in seen for t in concept.terms)
        if runs and runs[-1][0] == found and runs[-1][1][-1].phrase == concept.phrase:
            runs[-1][1].append(concept)
        else:
            runs.append((found, [concept]))
    mass = lambda group: sum(weights.get(t, 0.0) for c in group for t in c.terms)
    asked = {t: idf.get(t, 0.0) for c in question for t in c.terms}
    asked_total = sum(asked.values())
    return Evidence(
        similarity=similarity,
        coverage=best,
        missing=missing,
        rarest_missing=max((w for t, w in asked.items() if t not in seen), default=0.0) / max_idf if max_idf else 0.0,
        unknown=sum(w for t, w in asked.items() if t not in known) / asked_total if asked_total else 0.0,
        follow_up=bool(context),
        length=math.log1p(len(asked)),
        covered=tuple(" ".join(c.word for c in group) for found, group in runs if found),
        uncovered=tuple(
            " ".join(c.word for c in group) for found, group in sorted(runs, key=lambda run: -mass(run[1])) if not found
        ),
    )


@dataclass(frozen=True)
class GateModel:
    """Logistic regression over the evidence: P(relevant) = sigmoid(intercept + sum of coefficient x feature)."""

    coefficients: Mapping[str, float]
    intercept: float

    def probability(self, features: Mapping[str, float]) -> float:
        z = self.intercept + sum(c * features[name] for name, c in self.coefficients.items())
        return 1.0 / (1.0 + math.exp(-z))


@lru_cache(maxsize=1)
def gate_models() -> dict[str, GateModel]:
    """The fitted models shipped with the package: "hybrid" (with similarity) and "lexical" (bm25 mode)."""
    fitted = json.loads((resources.files("paperchat") / "gate.json").read_text(encoding="utf-8"))
    return {name: GateModel(model["coefficients"], model["intercept"]) for name, model in fitted["models"].items()}


def relevance(found: Evidence) -> float:
    """P(something here answers the question), from the model that matches the evidence."""
    return gate_models()["hybrid" if found.similarity is not None else "lexical"].probability(found.features())
