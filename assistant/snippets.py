"""Snippet selection: pure functions choosing the 1-3 abstract sentences that best match a query."""

from __future__ import annotations

from collections.abc import Mapping

from paperchat.index.passages import split_sentences
from paperchat.index.tokenize import Tokenizer

MARK_OPEN, MARK_CLOSE = "**", "**"
MAX_SNIPPET_CHARS = 420


def sentence_score(
    sentence: str, query_terms: set[str], tokenizer: Tokenizer, weights: Mapping[str, float] | None = None
) -> float:
    """Sum of the weights of the distinct query terms the sentence contains (added in a fixed order: a set's order
    changes from one process to the next, and a last-bit difference would break a tie differently)."""
    present = query_terms.intersection(tokenizer.term_set(sentence))
    return sum((weights or {}).get(term, 1.0) for term in sorted(present))


def choose_sentences(
    sentences: list[str],
    query_terms: set[str],
    tokenizer: Tokenizer,
    weights: Mapping[str, float] | None = None,
    limit: int = 3,
) -> list[int]:
    """Indices (in reading order) of up to `limit` best-matching sentences within the length budget.

    With no matching sentence the abstract's opening sentence stands in: it usually says what the paper does.
    """
    if not sentences:
        return []
    scores = [sentence_score(s, query_terms, tokenizer, weights) for s in sentences]
    order = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    chosen = [order[0]] if scores[order[0]] > 0 else [0]
    used = len(sentences[chosen[0]])
    for i in order[1:]:
        if len(chosen) >= limit or scores[i] <= 0:
            break
        if used + len(sentences[i]) > MAX_SNIPPET_CHARS:
            continue
        chosen.append(i)
        used += len(sentences[i])
    return sorted(chosen)


def mark_terms(text: str, query_terms: set[str], tokenizer: Tokenizer) -> str:
    """Wrap every word whose term is a query term in ** markers (Markdown bold)."""
    out: list[str] = []
    last = 0
    for start, end, term in tokenizer.term_spans(text):
        if term in query_terms:
            out.append(text[last:start] + MARK_OPEN + text[start:end] + MARK_CLOSE)
            last = end
    out.append(text[last:])
    return "".join(out)


def make_snippet(
    abstract: str,
    query_terms: list[str],
    tokenizer: Tokenizer,
    weights: Mapping[str, float] | None = None,
    limit: int = 3,
) -> str:
    """The best 1-3 sentences, joined with ' … ' where they are not adjacent, query terms marked."""
    sentences = split_sentences(abstract)
    terms = set(query_terms)
    chosen = choose_sentences(sentences, terms, tokenizer, weights, limit)
    pieces: list[str] = []
    for position, i in enumerate(chosen):
        if position and i != chosen[position - 1] + 1:
            pieces.append("…")
        pieces.append(mark_terms(sentences[i], terms, tokenizer))
    return " ".join(pieces)
