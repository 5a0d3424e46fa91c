"""Citation checking for written (LLM) answers: does the abstract a sentence cites support it?

Pure functions over sentence embeddings and words, so that every verdict can be explained and
measured (`paperchat eval --claims`, eval/README.md). A sentence is *supported* by a source when
it is close in meaning to one of the source's sentences (or its title), shares its content words
with the source, and states no number or name (dataset, model, method) the source does not
contain. Every given source is scored,
so a sentence whose citation fails can name the source that does support it (a swapped citation).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from paperchat.index.passages import split_sentences
from paperchat.index.tokenize import Tokenizer

# One or more markers: [1], [1, 3], [2][4], [1; 2], [1-3] is read as 1 and 3 (ranges are rare and ambiguous).
MARKERS = re.compile(r"\s*((?:\[\s*\d{1,3}(?:\s*[,;\u2013-]\s*\d{1,3})*\s*\]\s*)+)")
# A number stated as such: "57.7%", "400x", "1,000", "~2.6B"; not the digits of a name ("GPT-4o", "Llama-3.1-405B").
_STATED_NUMBER = re.compile(r"(?<![\w.\-])[~≈]?(\d+(?:,\d{3})*(?:\.\d+)?)(?:%|x|×|k|m|b|times)?(?![\w\-])", re.I)
_ANY_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Numbers written as words count as their digits ("seven datasets" is 7); "one" is left out: it is mostly a pronoun.
NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        (
            "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen twenty"
        ).split()
    )
    if value >= 2
} | {"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000", "twice": "2"}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.I)
# A sentence that opens by referring back ("It also ...", "This approach ...") is read with the one before it.
_BACK_REFERENCE = re.compile(
    r"^(?:it|its|they|their|them|this|these|those|such|both|the (?:method|approach|model|framework|system|paper|"
    r"work|authors|technique|benchmark|dataset|study|algorithm|detector|analysis))\b",
    re.I,
)

# The support score is logistic in similarity and coverage, and 0 when the sentence states a
# number or a name the source lacks. Weights and threshold chosen on the dev half of eval/claims.jsonl
# (`paperchat eval --claims --half dev`); similarity weighs more than words so that a paraphrase passes.
WEIGHTS = {"bias": -9.0, "similarity": 9.0, "coverage": 6.0}
SUPPORTED = 0.5  # a cited source supports a sentence when its score reaches this


@dataclass(frozen=True)
class Support:
    """How well one source supports one sentence, and why."""

    source: int  # 1-based number of the source in the prompt
    similarity: float  # best cosine between the sentence and the source's title or one of its sentences
    coverage: float  # share of the sentence's content terms found in the source
    unmatched: tuple[
        str, ...
    ]  # numbers and names (datasets, models, methods) in the sentence that the source does not contain
    score: float  # the combined support in 0..1
    sentence: int = -1  # the abstract sentence (index in `split_sentences`) closest to the sentence; -1: none


@dataclass(frozen=True)
class Quote:
    """The sentence of a source that bears out one sentence of an answer: evidence a reader can check."""

    source: int  # the [n] of the source
    sentence: int  # its index among the abstract's sentences (`split_sentences`)
    text: str


@dataclass
class CheckedSentence:
    """One sentence of a written answer with its citations checked."""

    text: str  # the sentence without its markers
    cited: list[int]  # the given sources it cites
    removed: list[int] = field(default_factory=list)  # numbers it cited that were not given sources (dropped)
    supported: bool = False
    support: float = 0.0  # the best score among its cited sources
    best: int | None = None  # another given source that supports it, when its own citation does not
    unmatched: list[str] = field(default_factory=list)  # numbers and names it states that its best cited source lacks
    quotes: list[Quote] = field(default_factory=list)  # the sentence of each cited source that supports it

    def to_dict(self) -> dict:
        return asdict(self)

    def markers(self) -> str:
        return "".join(f"[{n}]" for n in self.cited)


def cited_sentences(text: str) -> list[tuple[str, list[int]]]:
    """The answer's sentences, each with the numbers of the markers it carries (in order, no repeats).

    A marker that opens a sentence ("... text. [2] Next ...") belongs to the sentence before it.
    """
    pieces = split_sentences(" ".join(text.split()), bracket_opens=True)
    found: list[tuple[str, list[int]]] = []
    for piece in pieces:
        leading = MARKERS.match(piece)
        if leading and found:
            found[-1][1].extend(n for n in _numbers(leading.group(1)) if n not in found[-1][1])
            piece = piece[leading.end() :].strip()
            if not re.search(r"\w", piece):  # "... text. [2]." : only the marker and its punctuation
                continue
        numbers: list[int] = []
        for match in MARKERS.finditer(piece):
            numbers.extend(n for n in _numbers(match.group(1)) if n not in numbers)
        plain = " ".join(MARKERS.sub(" ", piece).split())
        plain = re.sub(r"\s+([.,;:!?])", r"\1", plain)
        if re.search(r"\w", plain):
            found.append((plain, numbers))
    return found


def _numbers(markers: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d{1,3}", markers)]


def stated_numbers(sentence: str) -> set[str]:
    """The numbers a sentence states ("57.7", "400" of "400x", "1000" of "1,000"); digits inside names are not
    numbers."""
    return {n.replace(",", "") for n in _STATED_NUMBER.findall(sentence)} | _worded(sentence)


def present_numbers(source: str) -> set[str]:
    """Every number a source contains, read leniently: digits inside words ("sim2%") count, "53. 6" is 53.6
    (a scraping artefact of the listing pages), "1,000" is 1000."""
    text = re.sub(r"(\d),(\d{3})\b", r"\1\2", re.sub(r"(\d)\.\s(\d)", r"\1.\2", source))
    return set(_ANY_NUMBER.findall(text)) | _worded(source)


def _worded(text: str) -> set[str]:
    return {NUMBER_WORDS[word.lower()] for word in _NUMBER_WORD.findall(text)}


# A name as papers write them: CamelCase (ImageNet), capitals (GSM8K, PPO), letters with digits
# (GPT-2, Llama-3, CUB-200).
_WORDISH = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*")


def stated_names(sentence: str) -> dict[str, str]:
    """The names of datasets, models and methods a sentence states: normalised form (case, hyphens,
    dots and a plural s dropped) -> the name as written."""
    names = {}
    for word in _WORDISH.findall(sentence):
        word = re.sub(r"(?:-[a-z]+)+$", "", word)  # "GPT-annotated", "BERT-based": the name is the first part
        letters = re.sub(r"[^A-Za-z]", "", word)
        capitals = sum(c.isupper() for c in letters)
        if (
            capitals >= 2
            or (capitals and not word[0].isupper())
            or (capitals and re.search(r"\d", word))
            or re.search(r"[A-Za-z]-?\d", word)
        ):
            names[_normal(re.sub(r"(?<=[A-Z])s$", "", word))] = word
    return names


def _normal(text: str) -> str:
    """Lower case without hyphens, dots, spaces and LaTeX marks: "L_2", "L2" and "$L_2$" are one name."""
    return re.sub(r"[-.\s_${}\\]", "", text.lower())


@dataclass(frozen=True)
class NameIndex:
    """What a source offers for matching names: its normalised text and the initials of its runs of
    2-6 words (so that an acronym spelled out in the source, LLM: large language model, is present)."""

    flat: str
    initials: frozenset[str]

    @classmethod
    def of(cls, source: str, longest: int = 6) -> NameIndex:
        words = re.findall(r"[a-z]+", source.lower())
        initials = frozenset(
            "".join(w[0] for w in words[i : i + n]) for n in range(2, longest + 1) for i in range(len(words) - n + 1)
        )
        return cls(_normal(source), initials)


def missing_names(names: dict[str, str], source: NameIndex) -> set[str]:
    """The names (as written) the source does not contain."""
    return {
        written
        for name, written in names.items()
        if name not in source.flat and not (name.isalpha() and name in source.initials)
    }


def coverage(sentence_terms: Sequence[str], source_terms: set[str]) -> float:
    distinct = set(sentence_terms)
    return len(distinct & source_terms) / len(distinct) if distinct else 0.0


def support_score(similarity: float, covered: float, unmatched: int) -> float:
    """The support score of one (sentence, source) pair: 0 when the sentence states a number or name the source
    lacks."""
    if unmatched:
        return 0.0
    return 1.0 / (
        1.0 + math.exp(-(WEIGHTS["bias"] + WEIGHTS["similarity"] * similarity + WEIGHTS["coverage"] * covered))
    )


def verdict(cited: Sequence[int], supports: Sequence[Support]) -> tuple[bool, float, int | None]:
    """(supported, best cited score, best other source) for a sentence citing `cited` among `supports`:
    supported when a cited source reaches SUPPORTED; when none does, the best uncited source that
    does is named."""
    by_source = {s.source: s for s in supports}
    own = max((by_source[n].score for n in cited if n in by_source), default=0.0)
    if own >= SUPPORTED:
        return True, own, None
    rival = max((s for s in supports if s.source not in cited), key=lambda s: s.score, default=None)
    return False, own, rival.source if rival is not None and rival.score >= SUPPORTED else None


class CitationChecker:
    """Checks written answers against the sources they were given, with the already loaded embedder."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], tokenizer: Tokenizer) -> None:
        self.encode = encode  # unit-length embeddings of a list of texts
        self.tokenizer = tokenizer

    def supports(
        self, sentences: Sequence[str], sources: Sequence[tuple[str, str]], previous: Sequence[str | None] = ()
    ) -> list[list[Support]]:
        """For each sentence, its Support from each source ((title, abstract) pairs numbered from 1).

        A sentence that opens with a back-reference ("It also ...") and has a `previous` sentence
        takes the better similarity of itself alone and of the two read together; its words,
        numbers and names are still its own.
        """
        befores = [*previous, *[None] * (len(sentences) - len(previous))]
        read_with = {
            i: f"{before} {sentence}"
            for i, (sentence, before) in enumerate(zip(sentences, befores))
            if before and _BACK_REFERENCE.match(sentence)
        }
        units = [[title, *split_sentences(abstract)] for title, abstract in sources]
        flat = [text for unit in units for text in unit]
        vectors = self.encode([*sentences, *read_with.values(), *flat]) if sentences else np.zeros((0, 1))
        count = len(sentences)
        sentence_vectors, unit_vectors = vectors[:count], vectors[count + len(read_with) :]
        # Each sentence is compared through its own vector and, when it refers back, the vector of it read with the
        # one before.
        views = [[sentence_vectors[i]] for i in range(count)]
        for row_of_context, i in enumerate(read_with):
            views[i].append(vectors[count + row_of_context])
        texts = [f"{title}. {abstract}" for title, abstract in sources]
        source_terms = [set(self.tokenizer.tokens(text)) for text in texts]
        source_numbers = [present_numbers(text) for text in texts]
        source_names = [NameIndex.of(text) for text in texts]
        found = []
        for i, sentence in enumerate(sentences):
            terms = self.tokenizer.tokens(sentence)
            stated, names = stated_numbers(sentence), stated_names(sentence)
            row, start = [], 0
            for j, unit in enumerate(units):
                block = unit_vectors[start : start + len(unit)]
                cosines = np.max(np.stack([block @ view for view in views[i]]), axis=0)
                similarity = float(cosines.max())
                closest = int(np.argmax(cosines[1:])) if len(unit) > 1 else -1  # row 0 is the title
                start += len(unit)
                covered = coverage(terms, source_terms[j])
                unmatched = tuple(sorted((stated - source_numbers[j]) | missing_names(names, source_names[j])))
                row.append(
                    Support(
                        j + 1,
                        round(similarity, 4),
                        round(covered, 4),
                        unmatched,
                        round(support_score(similarity, covered, len(unmatched)), 4),
                        closest,
                    )
                )
            found.append(row)
        return found

    def check(self, text: str, sources: Sequence[tuple[str, str]]) -> list[CheckedSentence]:
        """The answer's sentences with citations to sources it was not given removed and each verdict."""
        parsed = cited_sentences(text)
        given = range(1, len(sources) + 1)
        texts = [sentence for sentence, _ in parsed]
        tables = self.supports(texts, sources, [None, *texts[:-1]])
        abstracts = [split_sentences(abstract) for _, abstract in sources]
        checked = []
        for (sentence, numbers), supports in zip(parsed, tables):
            cited = [n for n in numbers if n in given]
            supported, own, best = verdict(cited, supports)
            closest = max((supports[n - 1] for n in cited), key=lambda s: s.score, default=None)
            lacking = list(closest.unmatched) if closest and not supported else []
            quotes = [
                Quote(n, supports[n - 1].sentence, abstracts[n - 1][supports[n - 1].sentence])
                for n in cited
                if supports[n - 1].score >= SUPPORTED and supports[n - 1].sentence >= 0
            ]
            checked.append(
                CheckedSentence(
                    sentence,
                    cited,
                    [n for n in numbers if n not in given],
                    supported,
                    round(own, 4),
                    best,
                    lacking,
                    quotes,
                )
            )
        return checked
