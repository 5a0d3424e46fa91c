"""Chat logic, all pure: how a follow-up is searched, the relevance gate, extractive answers, and
how a written (LLM) answer is judged once its citations are checked.

Nothing here calls a model. A message after earlier turns is searched as several weighted
formulations at once (`formulations`): the message itself counts most, the previous question
is there as down-weighted context (so "what goes wrong with those methods?" still knows which
methods), and a rule-based rewrite adds the grammar's reading (`rewrite_follow_up`:
substitution cues such as "what about X" or "X instead" drop the part of the previous topic
that X replaces). None of the three has to be right on its own, so a phrasing no rule knows
degrades to "message plus context" instead of failing.

A message that points back ("what about doing that for video?", "can the same be done during
pretraining?", "any benchmarks for that?") refers to the previous question's action or object: the
rewrite keeps the whole previous topic (an opening "what about" replaces nothing then), and when
the message says little beyond the pointer, the rewrite counts most (`POINTER_WEIGHTS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

from paperchat.citations import CheckedSentence, Quote
from paperchat.compare import Row
from paperchat.filters import Filter
from paperchat.hits import Hit
from paperchat.index.tokenize import STOPWORDS, Tokenizer
from paperchat.snippets import choose_sentences, split_sentences

# Words that carry no topic in a chat question; stripped before BM25 sees the query.
MIN_SUPPORTED = 2 / 3  # share of a written answer's sentences that must be supported for it to be shown

CHAT_FILLER = frozenset(
    """tell show find give list know want need looking look interested paper papers work works research
    studies study article articles anything something please thanks thank hi hello hey explain help
    approach approaches method methods technique techniques related relevant regarding existing recent
    also too else instead well like similar one ones kind kinds sort use uses using used done exist
    any many much lot lots way ways people someone everything things thing stuff question good""".split()
)
REFERENCES = frozenset("it its that those them these this they their there such same above".split())
SUBSTITUTION_CUES = (
    "what about",
    "how about",
    "and what about",
    "and for",
    "and in",
    "and on",
    "but for",
    "now for",
    "same for",
    "same but for",
    "what if",
    "more like that but",
)
ADDITION_CUES = (
    "and ",
    "does that",
    "does it",
    "do they",
    "do any",
    "does any",
    "any that",
    "any of",
    "which of",
    "which one",
    "how does it",
    "how do they",
    "how does that",
    "more on",
    "more about",
    "what else",
    "is there anything",
    "are there any that",
    "can it",
    "can they",
    "also",
    "any ",
    "anything ",
    "which use",
    "which ones",
    "which one",
    "what are the downsides",
    "what are the limitations",
    "what are the drawbacks",
    "what are the risks",
    "what are the failure",
)
TOPIC_SWITCHES = (
    "separately",
    "unrelated",
    "different question",
    "new question",
    "another question",
    "separate question",
    "unrelated question",
    "on another note",
    "on a different note",
    "switching topics",
    "switching gears",
    "switching subjects",
    "change of topic",
    "changing the subject",
    "changing topics",
    "new topic",
    "different topic",
    "another topic",
    "something else",
    "something different",
)
TRAILING_CUES = ("too", "as well", "instead", "rather")
_WORD = re.compile(r"[\w][\w+\-.]*[\w+]|[\w]", re.UNICODE)
_DOMAIN_CUE = re.compile(r"\b(?:for|in|on|with)\b")
# An announced new subject: "Unrelated: ...", "ok, totally unrelated, but ...", "switching gears completely - ...".
_SWITCH = re.compile(
    r"^\s*(?:(?:ok|okay|alright|so|btw|and|now)\b[\s,]*)?(?:(?:totally|completely|entirely|quite)\s+)?(?:"
    + "|".join(TOPIC_SWITCHES)
    + r")\b(?:\s+(?:completely|entirely|now|here))?[\s,:;.!-]*(?:but\b[\s,]*)?",
    re.I,
)
# "... instead of the weights", "rather than text", ", not generation": what the user rules out.
_EXCLUDED = re.compile(
    r"(?:\b(?:instead of|rather than|other than|apart from|except for)|(?:^|,|\bbut)\s*not)"
    r"\s+(?:the |a |an )?(?:[\w+\-]+\s*){1,4}",
    re.I,
)
# A back-reference to the previous question's action or object: "the same", "like that", "can it be ...",
# "does that work", "doing that", "tried those on", "benchmarks for that", "their sample complexity".
_POINTED = r"(?:that|this|it|those|these|them|they|the same)"
_POINTER = re.compile(
    r"\b(?:the same|same (?:thing|idea|approach|trick|method)|similar|such|like (?:that|this|those|these|it))\b"
    r"|\b(?:can|could|does|do|did|would|will|is|are|was|were|has|have|had|should|might|may)\s+" + _POINTED + r"\b"
    r"|\b(?:do|does|did|doing|done|apply|applying|applied|use|using|used|try|tried|trying|extend|extending|point"
    r"|pointed|pointing|having|make|making|run|running|combine|combining|push|pushing|take|taking|scale|scaling)\s+"
    + _POINTED
    + r"\b"
    r"|\b(?:for|on|to|with|of|by|from|about|behind|after|into|in|at|beyond)\s+" + _POINTED + r"\s*(?:[?.!,;:]|$)"
    r"|\b(?:its|their|those|these)\b",
    re.I,
)
# "X instead", "rather X": a replacement said outright ("instead of X", "rather than X" only rule X out).
_SAID_INSTEAD = re.compile(r"\b(?:instead|rather)\b(?!\s+(?:of|than)\b)", re.I)
CONTEXT_WEIGHT = 0.7
REWRITE_WEIGHT = 0.5
# A message that points back and has at most POINTER_WORDS content words of its own ("can the same be done
# during pretraining?") says little alone: searched as message, context, rewrite at these weights.
POINTER_WORDS = 3
POINTER_WEIGHTS = (0.7, 0.7, 1.0)


@dataclass(frozen=True)
class Formulation:
    """One text searched for a question and how much it counts: a plain query is one
    formulation, a follow-up in a chat several (`formulations`)."""

    text: str
    weight: float = 1.0
    role: str = "question"


def content_words(text: str) -> list[str]:
    """Words of `text` that carry topic: not stopwords, not chat filler, not back-references."""
    words = [w.strip(".-") for w in _WORD.findall(text)]
    return [
        w
        for w in words
        if w and w.lower() not in STOPWORDS and w.lower() not in CHAT_FILLER and w.lower() not in REFERENCES
    ]


def content_phrases(text: str) -> list[list[str]]:
    """Runs of content words, split at stopwords, chat filler, back-references and punctuation."""
    phrases: list[list[str]] = [[]]
    for match in re.finditer(r"[^\w\s+\-.]|" + _WORD.pattern, text):
        word = match.group(0).strip(".-")
        low = word.lower()
        if not word or not _WORD.fullmatch(word) or low in STOPWORDS or low in CHAT_FILLER or low in REFERENCES:
            if phrases[-1]:
                phrases.append([])
            continue
        phrases[-1].append(word)
    return [p for p in phrases if p]


def topic_chunks(text: str) -> list[str]:
    """The previous query split into topic phrases at stopwords/punctuation ("pruning | large language models")."""
    phrases = content_phrases(text)
    if len(phrases) == 1 and len(phrases[0]) >= 3:  # "pruning large language models": task word + object
        phrases = [phrases[0][:1], phrases[0][1:]]
    return [" ".join(p) for p in phrases]


def _opens_with(lowered: str, cues: Sequence[str]) -> bool:
    return any(lowered.startswith(cue) for cue in cues)


def _ends_with_trailing_cue(lowered: str) -> bool:
    stripped = lowered.rstrip("?!. ")
    return any(stripped.endswith(" " + cue) for cue in TRAILING_CUES)


def is_follow_up(message: str) -> bool:
    """Does the message lean on the conversation (a cue opening, a back-reference, 'too'/'instead', or ruling
    something out: 'rather than math', 'not prompt jailbreaks')?"""
    lowered = " ".join(message.lower().split())
    if _opens_with(lowered, SUBSTITUTION_CUES + ADDITION_CUES) or _ends_with_trailing_cue(lowered):
        return True
    if _EXCLUDED.search(message):
        return True
    words = set(re.findall(r"[a-z]+", lowered))
    return bool(words & REFERENCES) and len(content_words(message)) <= 6


def points_back(message: str) -> bool:
    """Does the message refer to the previous question's action or object ("doing that", "the same",
    "can it be done ...", "benchmarks for that", "their limitations")?"""
    return bool(_POINTER.search(" ".join(message.split())))


def _after_cue(lowered: str) -> str:
    """The message without its opening substitution cue (whose own 'that' in "more like that but" or 'same' in
    "same for" is part of the cue, not a pointer)."""
    for cue in sorted(SUBSTITUTION_CUES, key=len, reverse=True):
        if lowered.startswith(cue):
            return lowered[len(cue) :]
    return lowered


def wants_substitution(message: str) -> bool:
    """Do the new words replace part of the previous topic? 'what about X', 'X instead', 'rather X' do; not when
    the message points back at that topic ('what about doing that for video?' keeps it), and not 'instead of X'
    alone (X is only ruled out)."""
    lowered = " ".join(message.lower().split())
    if _SAID_INSTEAD.search(lowered):
        return True
    return _opens_with(lowered, SUBSTITUTION_CUES) and not points_back(_after_cue(lowered))


def replaces_domain(message: str) -> bool:
    """'what about for vision?', 'how about instead in robotics?': the new words name a domain, not a method."""
    lowered = " ".join(message.lower().split())
    return bool(_DOMAIN_CUE.search(lowered))


def rewrite_follow_up(message: str, previous_query: str) -> str:
    """A stand-alone query for `message` given the previous searched query (unchanged if not a follow-up).

    Additive follow-ups keep the whole previous topic and add the new words; so do follow-ups
    that point back at it ("what about doing that for video?", "can the same be done during
    pretraining?"). Substitutions replace one chunk of a two-part topic ("pruning | large
    language models"): the domain chunk (the last) when the new words come after for/in/on,
    else the method chunk (the first).
    """
    switched = _SWITCH.sub("", message)
    if switched != message:  # "Unrelated: ..." announces a fresh question
        return switched or message
    if not previous_query or not is_follow_up(message):
        return message
    new = content_words(message)
    if not new:
        return previous_query
    chunks = topic_chunks(previous_query)
    new_text = " ".join(new)
    if wants_substitution(message) and len(chunks) >= 2:
        chunks = chunks[:-1] if replaces_domain(message) else chunks[1:]
    kept = [c for c in chunks if c.lower() not in new_text.lower()]
    return " ".join(kept + [new_text])


def formulations(message: str, previous: str, rewritten: str | None = None) -> list[Formulation]:
    """How `message` is searched after a conversation whose last searched question was `previous`.

    The message (without what it rules out: "instead of the weights") at weight 1; the previous
    question as context at CONTEXT_WEIGHT; a rewrite, when it says something new, at
    REWRITE_WEIGHT: `rewritten` (an LLM's stand-alone query) when given, else the rule-based one.
    A message that points back with few words of its own ("what about doing that for video?")
    is searched at POINTER_WEIGHTS instead: the rewrite, which says what "that" is, counts most.
    A message that announces a new subject ("Unrelated: ...") is searched alone. Weights were
    chosen on the dev half of the judged chats (eval/README.md).
    """
    switched = _SWITCH.sub("", message).strip()
    if not previous or switched != message.strip():
        return [Formulation(switched or message)]
    own = " ".join(_EXCLUDED.sub(" ", message).split()) or message
    weights = (1.0, CONTEXT_WEIGHT, REWRITE_WEIGHT)
    if points_back(message) and len(content_words(own)) <= POINTER_WORDS:
        weights = POINTER_WEIGHTS
    found = [Formulation(own, weights[0]), Formulation(previous, weights[1], "context")]
    excluded = {w.lower() for phrase in _EXCLUDED.findall(message) for w in content_words(phrase)}
    role = "llm rewrite" if rewritten else "rewrite"
    if not rewritten:
        rewritten = " ".join(w for w in rewrite_follow_up(message, previous).split() if w.lower() not in excluded)
    if rewritten and rewritten not in (message, own, previous):
        found.append(Formulation(rewritten, weights[2], role))
    return found


def describe_searched(searched: Sequence[Formulation]) -> str:
    """One line saying what was searched: 'message' + 'previous question' x0.7 + 'rewrite' x0.5."""
    return " + ".join(f"'{f.text}'" + ("" if f.weight == 1 else f" x{f.weight:g}") for f in searched)


def search_terms(text: str, tokenizer: Tokenizer) -> list[str]:
    """BM25 terms of a chat question with the chat filler removed (keeps all terms if only filler is left)."""
    terms = tokenizer.tokens(text)
    filler = _filler_terms(tokenizer)
    kept = [t for t in terms if t not in filler]
    return kept or terms


@lru_cache(maxsize=8)
def _filler_terms(tokenizer: Tokenizer) -> frozenset[str]:
    return frozenset(tokenizer.tokens(word)[0] for word in CHAT_FILLER if tokenizer.tokens(word))


@dataclass(frozen=True)
class SentenceEvidence:
    """One sentence of an answer and the source sentences that bear it out (none: nothing supports it)."""

    sentence: str
    quotes: list[Quote]

    def to_dict(self) -> dict:
        return {"sentence": self.sentence, "quotes": [asdict(q) for q in self.quotes]}


@dataclass
class Answer:
    """A chat reply: what was asked, what was searched, the extractive answer and its sources."""

    message: str
    query: str
    rewritten: bool
    relevant: bool
    text: str
    hits: list[Hit]
    relevance: float = 0.0
    searched: list[Formulation] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    where: Filter | None = None
    written_by: str | None = None  # the model that wrote `text`; None for the extractive answer
    sentences: list[CheckedSentence] = field(
        default_factory=list
    )  # a written answer's sentences, each citation checked
    notices: list[str] = field(
        default_factory=list
    )  # one line each: a fallback, unsupported sentences, removed citations
    withheld: str = ""  # a written answer not shown because too few of its sentences are supported (with markers)
    evidence: list[SentenceEvidence] = field(default_factory=list)  # per sentence of `text`: what bears it out
    table: list[Row] = field(default_factory=list)  # "compare [1] and [3]": the comparison table `text` shows

    def to_dict(self) -> dict:
        return {
            "message": self.message,
            "query": self.query,
            "rewritten": self.rewritten,
            "searched": [asdict(f) for f in self.searched],
            "covered": self.covered,
            "missing": self.missing,
            "filter": asdict(self.where) if self.where else None,
            "relevant": self.relevant,
            "relevance": self.relevance,
            "answer": self.text,
            "written_by": self.written_by,
            "sentences": [s.to_dict() for s in self.sentences],
            "notices": self.notices,
            "withheld": self.withheld,
            "evidence": [e.to_dict() for e in self.evidence],
            "table": [row.to_dict() for row in self.table],
            "hits": [h.to_dict() for h in self.hits],
        }


@dataclass(frozen=True)
class AnswerEvent:
    """One step of a streamed answer: `sources` (retrieval done, before any token), `token` (a piece
    of the written answer as the model sends it) and, last, `answer` (the final, checked answer)."""

    kind: str
    answer: Answer
    token: str = ""


def fallback(extractive: Answer, notice: str) -> Answer:
    """The extractive answer shown instead of a written one, with the one-line reason."""
    return replace(extractive, notices=[*extractive.notices, notice])


def written_answer(
    extractive: Answer, sentences: list[CheckedSentence], model: str, min_supported: float = MIN_SUPPORTED
) -> Answer:
    """The answer once a written reply's citations are checked: the written text with citations to sources it was
    not given removed and notices for what the check found; or, when fewer than `min_supported` of its sentences
    are supported by what they cite, the extractive answer, the written one kept in `withheld` behind a notice (a
    weak model's answer with two supported sentences in fourteen is not an answer to show)."""
    removed = sorted({n for s in sentences for n in s.removed})
    notices = (
        [f"Removed citations to sources the model was not given: {', '.join(f'[{n}]' for n in removed)}."]
        if removed
        else []
    )
    text = " ".join(f"{s.text} {s.markers()}".strip() for s in sentences)
    supported = sum(s.supported for s in sentences)
    if not supported or supported < min_supported * len(sentences):
        why = (
            f"None of the sentences {model} wrote is supported by the abstracts it cites"
            if not supported
            else f"Only {supported} of the {len(sentences)} sentences {model} wrote are supported by the abstracts "
            f"they cite (a written answer is shown from {min_supported:.0%}: min_supported)"
        )
        return replace(
            extractive,
            sentences=sentences,
            notices=[
                *extractive.notices,
                *notices,
                f"{why}; showing the extractive answer instead (the written one is under 'withheld').",
            ],
            withheld=text,
        )
    if supported < len(sentences):
        notices.append(
            f"{len(sentences) - supported} of {len(sentences)} sentences are not supported by the sources they cite "
            "(marked)."
        )
    return replace(
        extractive,
        text=text,
        written_by=model,
        sentences=sentences,
        notices=[*extractive.notices, *notices],
        evidence=[SentenceEvidence(s.text, s.quotes) for s in sentences],
    )


NOTHING_RELEVANT = (
    "Nothing relevant: no paper in the index is close enough to this question. "
    "Try other words, or ask about a topic the corpus covers."
)


def repr_phrase(phrase: str) -> str:
    return f"\u201c{phrase}\u201d"


def nothing_relevant(missing: Sequence[str], covered: Sequence[str], closest: Sequence[Hit], shown: int = 3) -> str:
    """The reply when the gate declines: what no paper covers, what the closest papers do match, and which they are
    (pass no `closest` when they are not worth naming)."""
    if not missing:
        text = NOTHING_RELEVANT
    else:
        text = f"No paper here covers {' or '.join(repr_phrase(phrase) for phrase in missing[:2])}"
        text += (
            f"; the closest papers match only {', '.join(map(repr_phrase, covered[:3]))}:"
            if covered and closest
            else "."
        )
    if closest:
        text += " " + "; ".join(f"[{h.rank}] {h.title}" for h in closest[:shown]) + "."
    return text


def compose_answer(
    hits: list[Hit],
    query_terms: list[str],
    tokenizer: Tokenizer,
    weights: Mapping[str, float] | None = None,
    sources: int = 3,
) -> tuple[str, list[SentenceEvidence]]:
    """Extractive answer: the best-matching sentence (IDF-weighted) of each top abstract, each followed by its [n]
    marker; with each sentence's evidence (the sentence itself, where it stands in its abstract)."""
    evidence = []
    for hit in hits[:sources]:
        sentences = split_sentences(hit.abstract)
        chosen = choose_sentences(sentences, set(query_terms), tokenizer, weights, limit=1)
        if chosen:
            quote = Quote(hit.rank, chosen[0], sentences[chosen[0]])
            evidence.append(SentenceEvidence(quote.text, [quote]))
    if not evidence:
        return NOTHING_RELEVANT, []
    return " ".join(f"{e.sentence} [{e.quotes[0].source}]" for e in evidence), evidence
