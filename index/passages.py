"""Pieces of abstracts as vectors: passages of long abstracts (MaxP scoring) and the words of all of them.

MiniLM reads at most 256 word pieces, and every bundled abstract is longer (median 326), so a
document vector never sees an abstract's ending. An abstract longer than the model's window is
also embedded as sentence-packed passages that each fit it (the first one led by the title), and
a document's dense score is the best of its own vector and its passages' (MaxP, Dai and Callan
2019). eval/README.md records the study behind it.

The `Lexicon` holds the other end of the scale: every distinct word of the abstracts, embedded
alone, grouped by its BM25 term. The relevance gate asks it whether a top abstract expresses a
question's word by meaning ("forgot" ~ "forgets", "purged" ~ "removal"): a word embedded alone
is close to its near-synonyms and far from merely related topics, which a passage or sentence
vector is not (a lone word scores about as high against a sentence on a neighbouring topic as
against one that says it; see `paperchat.gate`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from paperchat.index.stored import held, load_vectors, run_rows, save_vectors

PASSAGE_VECTORS_FILE = "passage-vectors.npy"
PASSAGE_OFFSETS_FILE = "passage-offsets.npy"
LEXICON_FILE = "lexicon.json"
LEXICON_VECTORS_FILE = "lexicon-vectors.npy"
# A word of an abstract for the lexicon: letters and digits, hyphenated parts kept together ("class-incremental").
_LEXICON_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
LEXICON_MIN_CHARS = 3
# A sentence ends at . ! or ? before a capital or a digit, which may follow an opening quote or bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
# ... or before any opening quote or bracket: a written answer's citation marker "[2]" opens a new piece.
_SENTENCE_OR_MARKER_END = re.compile(r"(?<=[.!?])\s+(?=[\[\"'(A-Z0-9])")


def split_sentences(text: str, bracket_opens: bool = False) -> list[str]:
    """Sentences of an abstract (a period followed by a capital or digit ends one). With `bracket_opens`,
    an opening bracket or quote after a period starts a new one whatever follows it (written answers)."""
    return list(_sentences(text, bracket_opens))


@lru_cache(maxsize=20_000)
def _sentences(text: str, bracket_opens: bool) -> tuple[str, ...]:
    """Cached: the same abstracts come back query after query."""
    boundary = _SENTENCE_OR_MARKER_END if bracket_opens else _SENTENCE_END
    return tuple(s.strip() for s in boundary.split(text.strip()) if s.strip())


def pack_passages(title: str, sentences: Sequence[str], counts: Sequence[int], window: int) -> list[str]:
    """Sentence-packed passages of at most `window` tokens, the first led by the title; none when
    the title and all sentences fit the window together (the document vector then reads it all).

    `counts` are the token counts of the title and then of each sentence: WordPiece tokenises
    space-joined text as the concatenation of its pieces, so a passage's count is their sum.
    A single sentence longer than the window is a passage of its own (the model truncates it).
    """
    if sum(counts) <= window:
        return []
    passages: list[str] = []
    current, used = title, counts[0]
    for sentence, count in zip(sentences, counts[1:]):
        if current and used + count > window:
            passages.append(current)
            current, used = sentence, count
        else:
            current, used = f"{current} {sentence}".strip(), used + count
    if current:
        passages.append(current)
    return passages


@dataclass(frozen=True)
class PassageBlock:
    """The passages of some candidate documents, gathered once (float32, each document's run contiguous): MaxP
    against another query vector (pseudo-relevance feedback moves it) is then one product and one `reduceat`."""

    owners: np.ndarray  # the candidate (its position in the rows gathered) that each run belongs to
    starts: np.ndarray  # where each run begins in `vectors`
    vectors: np.ndarray

    @classmethod
    def gather(cls, rows: np.ndarray, offsets: np.ndarray, vectors: np.ndarray) -> PassageBlock:
        """The passages of the documents at `rows` (-1: unknown here, no passages) in the owner-sorted layout
        `offsets` over `vectors`."""
        known = np.flatnonzero(rows >= 0)
        counts = offsets[rows[known] + 1] - offsets[rows[known]]
        owners = known[counts > 0]
        which, run_starts = run_rows(offsets, rows[owners])
        return cls(owners, run_starts, np.asarray(vectors[which], dtype=np.float32).reshape(-1, vectors.shape[1]))

    @classmethod
    def joined(cls, pieces: Sequence[tuple[np.ndarray, PassageBlock]], dimension: int) -> PassageBlock:
        """One block from blocks of subsets of the candidates (`positions`, block): the segments' own."""
        if not pieces:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, dimension), np.float32))
        sizes = np.cumsum([0] + [len(block.vectors) for _, block in pieces])
        return cls(
            np.concatenate([positions[block.owners] for positions, block in pieces]),
            np.concatenate([block.starts + size for (_, block), size in zip(pieces, sizes.tolist())]),
            np.concatenate([block.vectors for _, block in pieces]),
        )

    def best(self, query: np.ndarray, doc_similarities: np.ndarray) -> np.ndarray:
        """MaxP: each candidate's best cosine among its own (`doc_similarities`) and its passages'."""
        best = np.array(doc_similarities, dtype=np.float32, copy=True)
        if self.owners.size:
            best[self.owners] = np.maximum(best[self.owners], np.maximum.reduceat(self.vectors @ query, self.starts))
        return best


class Passages:
    """Passage vectors grouped by document: document row r owns vectors[offsets[r]:offsets[r+1]]."""

    def __init__(self, offsets: np.ndarray, vectors: np.ndarray) -> None:
        self.offsets = offsets
        self.vectors = vectors

    @classmethod
    def group(
        cls, doc_ids: Sequence[str], owners: Sequence[str], numbers: Sequence[int], vectors: np.ndarray, dimension: int
    ) -> Passages:
        """Owner-sorted layout from passages listed in any order; passages of unknown documents are dropped."""
        row = {doc_id: i for i, doc_id in enumerate(doc_ids)}
        keep = [(row[owner], number, i) for i, (owner, number) in enumerate(zip(owners, numbers)) if owner in row]
        keep.sort()
        counts = np.bincount(np.array([r for r, _, _ in keep], dtype=np.int64), minlength=len(doc_ids))
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        order = np.array([i for _, _, i in keep], dtype=np.int64)
        grouped = (
            np.asarray(vectors, dtype=np.float32)[order] if order.size else np.zeros((0, dimension), dtype=np.float32)
        )
        return cls(offsets, grouped)

    def __len__(self) -> int:
        """Number of documents covered (not of passages)."""
        return len(self.offsets) - 1

    def block(self, rows: np.ndarray) -> PassageBlock:
        """The passages of the documents at `rows` (-1: none known), gathered for MaxP."""
        return PassageBlock.gather(rows, self.offsets, self.vectors)

    def scan(self, query: np.ndarray, doc_similarities: np.ndarray) -> np.ndarray:
        """MaxP similarities of every document: one product over all passage vectors, and one
        `reduceat` over the owners' runs (in the owner-sorted layout they are already contiguous)."""
        best = np.array(doc_similarities, dtype=np.float32, copy=True)
        owners = np.flatnonzero(np.diff(self.offsets))
        if owners.size:
            similarities = np.asarray(self.vectors) @ query
            best[owners] = np.maximum(best[owners], np.maximum.reduceat(similarities, self.offsets[owners]))
        return best

    def held(self, resident: bool) -> Passages:
        """These passages with their vectors as a process holds them (`paperchat.index.stored`)."""
        return Passages(self.offsets, held(self.vectors, resident))

    def save(self, folder: Path) -> None:
        np.save(folder / PASSAGE_OFFSETS_FILE, self.offsets)
        save_vectors(folder / PASSAGE_VECTORS_FILE, self.vectors)

    @classmethod
    def load(cls, folder: Path, resident: bool) -> Passages:
        return cls(np.load(folder / PASSAGE_OFFSETS_FILE), load_vectors(folder / PASSAGE_VECTORS_FILE, resident))


def lexicon_words(texts: Iterable[str], tokens: Callable[[str], list[str]]) -> list[tuple[str, str]]:
    """The distinct words of `texts` (lower-cased, at least LEXICON_MIN_CHARS long, with a letter), each
    with its BM25 term (`tokens`: the index's tokenizer), sorted; a hyphenated word also gives its parts.
    Stopwords (no term) are left out."""
    found: dict[str, str] = {}
    for text in texts:
        for match in _LEXICON_WORD.finditer(text.lower()):
            word = match.group(0)
            for piece in (word, *word.split("-")) if "-" in word else (word,):
                if piece in found or len(piece) < LEXICON_MIN_CHARS or not any(ch.isalpha() for ch in piece):
                    continue
                terms = tokens(piece)
                if terms:
                    found[piece] = terms[0]
    return sorted(found.items())


class Lexicon:
    """Distinct words of the abstracts, their BM25 terms and unit vectors (row i: `words[i]`)."""

    def __init__(self, words: list[str], terms: list[str], vectors: np.ndarray) -> None:
        self.words = words
        self.terms = terms
        self.vectors = vectors
        rows: dict[str, list[int]] = {}
        for row, term in enumerate(terms):
            rows.setdefault(term, []).append(row)
        self._rows = rows
        self._row_of_word: dict[str, int] | None = None

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        tokens: Callable[[str], list[str]],
        encode: Callable[[list[str]], np.ndarray] | None,
        dimension: int,
        previous: Lexicon | None = None,
        new_words_only: bool = False,
    ) -> Lexicon:
        """Every word of `texts` embedded alone by `encode` (one batched call for the words `previous`, the
        lexicon of the snapshot before, does not hold: a small ingest embeds only its new words); empty
        without `encode`. With `new_words_only`, the words `previous` holds are left out (a delta segment's
        lexicon, read together with the earlier segments')."""
        vectors = np.zeros((0, dimension), dtype=np.float32)
        if encode is None:
            return cls([], [], vectors)
        known = previous.row_of_word() if previous is not None and previous.vectors.shape[1:] == (dimension,) else {}
        pairs = [pair for pair in lexicon_words(texts, tokens) if not (new_words_only and pair[0] in known)]
        words = [word for word, _ in pairs]
        if words:
            vectors = np.empty((len(words), dimension), dtype=np.float32)
            new = [i for i, word in enumerate(words) if word not in known]
            old = [i for i, word in enumerate(words) if word in known]
            if old:
                vectors[old] = np.asarray(previous.vectors[[known[words[i]] for i in old]])
            if new:
                vectors[new] = np.asarray(encode([words[i] for i in new]), dtype=np.float32)
        return cls(words, [term for _, term in pairs], held(vectors, resident=True))

    def row_of_word(self) -> dict[str, int]:
        """Row by word (made once: a lexicon never changes)."""
        if self._row_of_word is None:
            self._row_of_word = {word: row for row, word in enumerate(self.words)}
        return self._row_of_word

    def __len__(self) -> int:
        """Number of words."""
        return len(self.words)

    def rows(self, terms: Iterable[str]) -> np.ndarray:
        """Rows of the words whose term is one of `terms` (a document's terms: the words it holds, in any form)."""
        return np.fromiter((row for term in dict.fromkeys(terms) for row in self._rows.get(term, ())), dtype=np.int64)

    def save(self, folder: Path) -> None:
        (folder / LEXICON_FILE).write_text(json.dumps({"words": self.words, "terms": self.terms}), encoding="utf-8")
        save_vectors(folder / LEXICON_VECTORS_FILE, self.vectors)

    @classmethod
    def load(cls, folder: Path) -> Lexicon:
        listed = json.loads((folder / LEXICON_FILE).read_text(encoding="utf-8"))
        vectors = load_vectors(folder / LEXICON_VECTORS_FILE, resident=False)  # read a few rows a query
        if not len(listed["words"]) == len(listed["terms"]) == len(vectors):
            raise ValueError("lexicon words, terms and vectors do not line up")
        return cls(listed["words"], listed["terms"], vectors)
