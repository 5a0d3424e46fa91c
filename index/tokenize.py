"""Tokenisation shared by BM25 indexing, BM25 queries and snippet highlighting.

Lower-cased words with accents folded, English stopwords removed, Snowball-stemmed. Identifiers such as
`GPT-4o`, `Llama-3.1`, `Qwen2.5-VL` or `Lastde++` are kept whole *and* split into their
stemmed parts, so `gpt-4o`, `GPT 4o` and `Lastde++` all find the paper that names them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

# A word, optionally joined to more words by - . + (identifiers), optionally ending in '+'s.
_TOKEN = re.compile(r"[^\W_]+(?:[-.+][^\W_]+)*\+*", re.UNICODE)
_PART = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS: frozenset[str] = frozenset(STOPWORDS_EN_PLUS)
MAX_TOKEN_CHARS = 64


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


# Characters that must never reach a terminal or a query as such: C0/C1 controls but tab and newline,
# zero-width characters, and the bidi embedding, override and isolate controls.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
# Unpaired UTF-16 surrogates: JSON can escape one ("\\ud83d" cut from its pair) and a terminal's undecodable bytes
# reach sys.argv as them, but no UTF-8 encoder (Chroma, the tokenizers, a file) takes them.
LONE_SURROGATES = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(value):
    """`value` (text, or a parsed JSON value) with each unpaired surrogate replaced by U+FFFD, and how many were."""
    if isinstance(value, str):
        return LONE_SURROGATES.subn("\ufffd", value)
    if isinstance(value, dict):
        pairs = [(without_lone_surrogates(key), without_lone_surrogates(item)) for key, item in value.items()]
        return {key: item for (key, _), (item, _) in pairs}, sum(a + b for (_, a), (_, b) in pairs)
    if isinstance(value, list):
        items = [without_lone_surrogates(item) for item in value]
        return [item for item, _ in items], sum(count for _, count in items)
    return value, 0


def fold(word: str) -> str:
    """Accents removed ("schrödinger" -> "schrodinger"), so that either spelling finds the other.

    The one accent folding of paperchat: BM25 terms, title identity (`papers.normalise_title`),
    filter columns (`columns.folded`) and citation keys (`export`) all go through it.
    """
    if word.isascii():
        return word
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


@lru_cache(maxsize=200_000)
def _term(word: str, stem: bool) -> str | None:
    """Accent folding, stopword filter and stemming of one lower-cased word, cached: the hot path of every query."""
    word = fold(word)
    if word in STOPWORDS or len(word) > MAX_TOKEN_CHARS:
        return None
    return _stemmer().stemWord(word) if stem else word


@lru_cache(maxsize=50_000)
def _cached_tokens(text: str, stem: bool, keep_identifiers: bool) -> tuple[str, ...]:
    out: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        token = match.group(0)
        if token.isalnum():
            term = _term(token, stem)
            if term:
                out.append(term)
            continue
        if keep_identifiers and len(token) <= MAX_TOKEN_CHARS:
            out.append(fold(token))
        for part in _PART.findall(token):
            term = _term(part, stem)
            if term:
                out.append(term)
    return tuple(out)


@dataclass(frozen=True)
class Tokenizer:
    """Turns text into BM25 terms. Frozen so it can be part of the BM25 index fingerprint."""

    stem: bool = True
    keep_identifiers: bool = True

    def describe(self) -> str:
        return (
            f"words+folded+stopwords_en_plus{'+snowball' if self.stem else ''}"
            f"{'+identifiers' if self.keep_identifiers else ''}"
        )

    def tokens(self, text: str, cache: bool = True) -> list[str]:
        """Terms of `text` in order; a compound identifier is followed by its parts.

        Queries and snippet sentences repeat, so they go through an LRU cache; bulk
        tokenising at ingest (`batch`) bypasses it rather than flooding it.
        """
        if cache and len(text) <= 4096:
            return list(_cached_tokens(text, self.stem, self.keep_identifiers))
        return list(_cached_tokens.__wrapped__(text, self.stem, self.keep_identifiers))

    def term_set(self, text: str) -> frozenset[str]:
        """The distinct terms of `text`, cached: snippets ask it of the same abstract sentences query after query."""
        return _cached_term_set(text, self.stem, self.keep_identifiers)

    def batch(self, texts: list[str]) -> list[list[str]]:
        return [self.tokens(text, cache=False) for text in texts]

    def term_spans(self, text: str) -> tuple[tuple[int, int, str], ...]:
        """(start, end, term) for every word of `text`, used to mark query terms in snippets (cached)."""
        return _cached_spans(text, self.stem)


@lru_cache(maxsize=50_000)
def _cached_term_set(text: str, stem: bool, keep_identifiers: bool) -> frozenset[str]:
    return frozenset(_cached_tokens.__wrapped__(text, stem, keep_identifiers))


@lru_cache(maxsize=50_000)
def _cached_spans(text: str, stem: bool) -> tuple[tuple[int, int, str], ...]:
    spans: list[tuple[int, int, str]] = []
    for match in _PART.finditer(text):
        term = _term(match.group(0).lower(), stem)
        if term:
            spans.append((match.start(), match.end(), term))
    return tuple(spans)
