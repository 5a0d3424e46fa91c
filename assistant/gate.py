"""The relevance gate, pure: does anything in the index answer the question, and if not, what is missing?

A question is split into its content words (chat filler removed), grouped into phrases. A
word is covered by an abstract that holds its term (by words) or, failing that, one of whose
words means nearly the same (by meaning: the word's MiniLM query vector has cosine at least
MEANING_THRESHOLD with the vector of a word of that abstract, from the snapshot's lexicon; so
"forgot" is covered by "forgets" and "purged" by "removal"). The top abstracts are the first
CONCEPT_DOCUMENTS of the whole ranking, whatever number of hits was asked for. These signals
then go into a logistic model fitted on the dev half of the judged off-topic and answerable
questions (`paperchat eval --fit-gate`; the coefficients ship in `gate.json`):

- `similarity`: the best MaxP cosine of any paper to the question (absent in bm25 mode);
- `coverage`: the IDF-weighted share of the question's terms the best of the top-3 abstracts covers;
- `missing`: the IDF-weighted share of the question's terms that no top-5 abstract covers;
- `rarest_missing`: the IDF (over its maximum) of the most specific question term no top-5 abstract covers;
- `unknown`: the IDF-weighted share of the question's terms that no abstract in the corpus holds;
- `follow_up`: whether the question came after earlier turns (its context is then part of the evidence);
- `length`: log(1 + number of distinct terms): a long question leaves more of its words unmatched.

(Covered: by words or by meaning. A term of a word covered by meaning counts as covered, in
that abstract; context words from earlier turns, and every word in bm25 mode, which never embeds, are
covered by words only.)

A near miss ("graph neural networks for road traffic") shares vocabulary with the corpus, so
its similarity is high; what gives it away is a central concept ("road traffic") that no close
abstract mentions or means, which is also what the answer then names.

Why single words: MiniLM puts a word embedded alone close to its near-synonyms (forgot ~
forgets 0.73, purged ~ removal 0.67) and below about 0.55 to words of merely related topics
(quadrotor ~ robotic 0.44), while against whole sentences or passages a word scores about the
same whether they say it or only neighbour it (forgot ~ a sentence on forgetting 0.29,
watermark ~ a sentence on detecting generated text 0.34). On the dev half, at 0.6, 38% of the
answerable questions' words that no top abstract holds are covered by meaning, and 13% of the
off-topic ones' (a near miss's words are near its closest papers' topics: "recognition" ~
"classification" 0.71). Meaning is only looked for when the snapshot has a lexicon.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from paperchat.chat import content_phrases, search_terms
from paperchat.index.tokenize import Tokenizer

COVERAGE_DOCUMENTS = 3
CONCEPT_DOCUMENTS = 5
MEANING_THRESHOLD = 0.6  # cosine of a question's word with a word of an abstract that counts as "means the same"


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


def uncovered_by_words(question: Sequence[Concept], documents: Sequence[set[str]]) -> list[int]:
    """Indexes of the question's concepts none of whose terms any of `documents` holds: those worth embedding."""
    seen = set().union(*documents) if documents else set()
    return [i for i, concept in enumerate(question) if not any(t in seen for t in concept.terms)]


def meaning_matches(
    concepts: np.ndarray, documents: Sequence[np.ndarray], threshold: float = MEANING_THRESHOLD
) -> list[set[int]]:
    """For each concept vector (rows of `concepts`), the indexes of the documents that express it by meaning:
    those with a word vector (rows of `documents[j]`) at cosine `threshold` or more (all vectors unit length)."""
    found: list[set[int]] = [set() for _ in range(len(concepts))]
    for j, words in enumerate(documents):
        if len(concepts) and len(words):
            best = (np.asarray(words, dtype=np.float32) @ np.asarray(concepts, dtype=np.float32).T).max(axis=0)
            for i in np.flatnonzero(best >= threshold).tolist():
                found[i].add(j)
    return found


def concepts_by_meaning(
    question: Sequence[Concept],
    documents: Sequence[set[str]],
    words_of: Callable[[int], np.ndarray],
    embed: Callable[[list[str]], np.ndarray],
    threshold: float = MEANING_THRESHOLD,
) -> dict[int, set[int]]:
    """The question's concepts that no document holds by words, mapped to the documents that express them by
    meaning (`evidence`'s `meaning`); concepts no document expresses are left out.

    `documents` are term sets; `words_of(j)` gives the vectors of the words of `documents[j]`;
    `embed` is called once, with the distinct words to embed (none when every concept is held by words).
    """
    wanted = uncovered_by_words(question, documents)
    if not wanted:
        return {}
    words = list(dict.fromkeys(question[i].word.lower() for i in wanted))
    found = dict(zip(words, meaning_matches(embed(words), [words_of(j) for j in range(len(documents))], threshold)))
    return {i: found[question[i].word.lower()] for i in wanted if found[question[i].word.lower()]}


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
    meaning: Mapping[int, set[int]] | None = None,
) -> Evidence:
    """The gate's signals for the question's concepts (and, in a chat, its context's) over the top `documents`
    (term sets, best first).

    `known` holds the question's terms that occur anywhere in the corpus; `max_idf` is the IDF
    of a term no document has. `meaning` maps the index of a question concept to the indexes of
    the documents that express it by meaning (`meaning_matches`); in those, its terms count as held.

    `covered` / `uncovered` are the question's own phrases: adjacent words that are covered (or
    not) together, the heaviest uncovered phrase first; words covered by meaning make phrases of
    their own ("graph neural networks" by words, "forecast" by meaning).
    """
    held = set().union(*documents[:CONCEPT_DOCUMENTS]) if documents else set()
    documents = [set(doc) for doc in documents[:CONCEPT_DOCUMENTS]]
    for i, where in (meaning or {}).items():
        for j in where:
            if j < len(documents):
                documents[j] |= set(question[i].terms)
    weights: dict[str, float] = {}
    for concept in question + context:
        for term in concept.terms:
            weights[term] = max(weights.get(term, 0.0), concept.weight * idf.get(term, 0.0))
    best = max((coverage(weights, doc) for doc in documents[:COVERAGE_DOCUMENTS]), default=0.0)
    seen = set().union(*documents) if documents else set()
    total = sum(weights.values())
    missing = sum(w for t, w in weights.items() if t not in seen) / total if total else 1.0

    def covered_by(concept: Concept) -> str:
        """ "words", "meaning" or "" (not covered)."""
        if any(t in held for t in concept.terms):
            return "words"
        return "meaning" if any(t in seen for t in concept.terms) else ""

    runs: list[tuple[str, list[Concept]]] = []
    for concept in question:
        how = covered_by(concept)
        if runs and runs[-1][0] == how and runs[-1][1][-1].phrase == concept.phrase:
            runs[-1][1].append(concept)
        else:
            runs.append((how, [concept]))
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
        covered=tuple(" ".join(c.word for c in group) for how, group in runs if how),
        uncovered=tuple(
            " ".join(c.word for c in group) for how, group in sorted(runs, key=lambda run: -mass(run[1])) if not how
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
