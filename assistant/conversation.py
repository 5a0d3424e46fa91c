"""A chat as explicit state: each turn's message, what it searched, the filter in force, the papers it showed and
the answer. Every surface shares it: `Assistant.chat()` starts one, the web chat keeps one per browser session,
`paperchat ask --session FILE` keeps one in a JSON file.

Because a turn records the papers it showed, "more like [2]", "the second one", "compare [1] and [3]" and "by the
same authors" act on exactly those papers, never on a re-search; because it records the filter, a filter stays
visible and is removed by asking ("clear the filters") or by `clear_filter()`. A follow-up is searched with the
previous turn's stand-alone question (`topic`) as context (`paperchat.chat.formulations`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from paperchat.chat import (
    Answer,
    AnswerEvent,
    Formulation,
    compose_answer,
    content_words,
    fallback,
    nothing_relevant,
    repr_phrase,
    rewrite_follow_up,
    search_terms,
    written_answer,
)
from paperchat.citations import CitationChecker
from paperchat.compare import table_text
from paperchat.filters import Filter
from paperchat.index.errors import PaperchatError
from paperchat.index.stored import write_text_atomically
from paperchat.intents import Pointer, apply_filter_request, read_filter_request, read_pointer
from paperchat.llm import LLMError, answer_messages, clean_rewrite, rewrite_messages
from paperchat.snippets import split_sentences

if TYPE_CHECKING:
    from paperchat.api import Assistant

SESSION_FORMAT = 1
LIST_KINDS = ("question", "filter", "more like")
NAME_CLOSEST = 0.1  # a declined question names its closest papers when the gate gave it at least this chance


@dataclass
class Turn:
    """One exchange: `topic` is the stand-alone question it searched (the previous one again for a filter
    request, "" when it searched nothing), `filter` what was in force after it, `hits` the ids it showed in order."""

    message: str
    kind: str  # question, filter, more like, compare, about, error
    topic: str
    searched: list[Formulation] = field(default_factory=list)
    filter: dict = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    answer: str = ""
    relevant: bool = False

    def to_dict(self) -> dict:
        return {**asdict(self), "searched": [asdict(f) for f in self.searched]}

    @classmethod
    def from_dict(cls, record: Mapping) -> Turn:
        return cls(**{**record, "searched": [Formulation(**f) for f in record.get("searched", [])]})


def next_topic(previous: str, message: str) -> str:
    """The stand-alone question a message asks after `previous`: the rule-based rewrite of what it asks besides a
    filter request, or the previous question when it asks nothing new (only a filter, a bad filter value, a pointer
    at a shown paper, no content words). `Conversation.topic` and `Assistant.resolve_history` both follow it."""
    request = read_filter_request(message)
    if read_pointer(message) is not None or request.error or request.only_filter or not content_words(request.rest):
        return previous
    return rewrite_follow_up(request.rest, previous) if previous else request.rest


class Conversation:
    """The turns of one chat with an `Assistant`, and the filter in force."""

    def __init__(self, assistant: Assistant, turns: list[Turn] | None = None, fingerprint: str | None = None) -> None:
        self.assistant = assistant
        self.turns: list[Turn] = list(turns or [])
        self.recorded_fingerprint = fingerprint  # the index state the turns were answered against

    # -- state ---------------------------------------------------------------------------------------------------
    @property
    def topic(self) -> str:
        """The stand-alone question of the conversation so far: the context of the next message."""
        return self.turns[-1].topic if self.turns else ""

    @property
    def shown(self) -> list[str]:
        """The ids of the last list of papers shown ([1] first): "[2]" and "the second one" point into it. A turn
        about one or two of them ("the second one", "compare [1] and [3]") keeps their numbers and the list."""
        return next((t.hits for t in reversed(self.turns) if t.kind in LIST_KINDS and t.hits), [])

    @property
    def filter(self) -> dict:
        """The filter in force: the one the last turn left ({} before the first)."""
        return self.turns[-1].filter if self.turns else {}

    def clear_filter(self) -> None:
        """Remove the filter: the next turns search every paper (the web chat's button)."""
        if self.turns:
            self.turns[-1].filter = {}

    def index_changed(self) -> str | None:
        """A notice when the turns were answered against another state of the index (a reopened session file)."""
        now = self.assistant.store.repository.fingerprint()
        if self.recorded_fingerprint and self.recorded_fingerprint != now:
            return (
                "This session was answered against another state of the index; its papers are looked up by id, "
                "so [n] still means what was shown, but new searches may differ."
            )
        return None

    # -- asking --------------------------------------------------------------------------------------------------
    def ask(self, message: str, k: int = 5, mode: str | None = None, where=None, write: bool | None = None) -> Answer:
        """Answer the next message (see `Assistant.ask`) and record the turn."""
        for event in self.ask_stream(message, k, mode, where, write):
            if event.kind == "answer":
                return event.answer
        raise AssertionError("ask_stream ends with an answer")

    def ask_stream(
        self, message: str, k: int = 5, mode: str | None = None, where=None, write: bool | None = None
    ) -> Iterator[AnswerEvent]:
        """`ask`, step by step: `sources` once the papers are found, `token`s of a written answer, then `answer`."""
        assistant = self.assistant
        if write and assistant.llm is None:
            raise PaperchatError(
                "no LLM is configured: set llm_url (--llm-url or PAPERCHAT_LLM_URL) for written answers"
            )
        if not isinstance(message, str) or not message.strip():
            raise PaperchatError("the message is empty; type a question or some keywords")
        llm = assistant.llm if write is not False else None
        extractive, turn = self._extractive(message, k, mode, Filter.of(where), llm)
        yield AnswerEvent("sources", extractive)
        if llm is None or not extractive.hits or turn.kind not in ("question", "filter"):
            self._record(turn, extractive)
            yield AnswerEvent("answer", extractive)  # nothing to write from, or a list of papers is the answer
            return
        pieces: list[str] = []
        try:
            history = [t.message for t in self.turns]
            for piece in llm.stream(
                answer_messages(
                    turn.topic if turn.kind == "filter" else message,
                    history,
                    extractive.hits,
                    assistant.settings.llm_abstract_chars,
                )
            ):
                pieces.append(piece)
                yield AnswerEvent("token", extractive, piece)
        except LLMError as exc:
            answer = fallback(extractive, f"No written answer: {exc}; showing the extractive answer.")
            self._record(turn, answer)
            yield AnswerEvent("answer", answer)
            return
        checker = CitationChecker(assistant.store.embedder.encode, assistant.store.snapshot().tokenizer)
        sentences = checker.check("".join(pieces), [(hit.title, hit.abstract) for hit in extractive.hits])
        answer = written_answer(extractive, sentences, llm.describe(), assistant.settings.min_supported)
        self._record(turn, answer)
        yield AnswerEvent("answer", answer)

    def _record(self, turn: Turn, answer: Answer) -> None:
        turn.answer = answer.text
        self.turns.append(turn)

    def _extractive(self, message: str, k: int, mode: str | None, given: Filter | None, llm) -> tuple[Answer, Turn]:
        """The retrieval for a message and its extractive answer, with the turn that records it."""
        pointer = read_pointer(message)
        if pointer and self.shown:
            return self._pointed(message, pointer, k, mode)
        request = read_filter_request(message)
        if request.error:
            return self._refused(message, f"Filter not changed: {request.error}. {self._filter_line()}")
        authors = self._authors_shown(request.same_authors) if request.same_authors else None
        if request.same_authors and not authors:
            number = request.same_authors
            reason = (
                "no answer has shown a paper yet"
                if not self.shown
                else f"the last answer showed no [{number}]"
                if not 1 <= number <= len(self.shown) and number != -1
                else f"the paper shown as [{number}] lists no authors in this index"
            )
            return self._refused(
                message, f"Filter not changed: \u201cby the same authors\u201d needs authors; {reason}."
            )
        wanted = apply_filter_request(self.filter, request, authors)
        try:
            Filter.of(wanted)
        except PaperchatError as exc:
            return self._refused(message, f"Filter not changed: {exc}. {self._filter_line()}")
        only_filter = request.only_filter
        if only_filter and not self.topic:
            turn = Turn(message, "filter", "", filter=wanted)
            text = f"Filter set: {_describe(wanted) or 'none'}. Ask a question to search with it."
            return Answer(message, "", False, False, text, [], where=Filter.of(wanted)), turn
        searched = self.topic if only_filter else request.rest
        context = "" if only_filter else self.topic
        where = Filter.of({**(asdict(given) if given else {}), **wanted})
        notices: list[str] = []
        rewritten = self._llm_rewrite(llm, searched, notices) if llm and context else None
        retrieval = self.assistant.retrieve(searched, k, mode, context=context, where=where, rewritten=rewritten)
        snapshot = self.assistant.store.snapshot()
        terms = search_terms(" ".join(f.text for f in retrieval.formulations), snapshot.tokenizer)
        evidence = []
        if retrieval.hits:
            text, evidence = compose_answer(retrieval.hits, terms, snapshot.tokenizer, snapshot.bm25.idf(terms))
        elif where is not None:
            text = self._filter_emptied(searched, context, retrieval, where, mode)
        else:
            text = nothing_relevant(
                retrieval.missing, retrieval.covered, retrieval.closest if retrieval.relevance >= NAME_CLOSEST else []
            )
        topic = searched if only_filter else next_topic(self.topic, message)
        turn = Turn(
            message,
            "filter" if only_filter else "question",
            topic,
            retrieval.formulations,
            wanted,
            [h.id for h in retrieval.hits],
            relevant=bool(retrieval.hits),
        )
        answer = Answer(
            message,
            retrieval.query,
            len(retrieval.formulations) > 1 or only_filter,
            bool(retrieval.hits),
            text,
            retrieval.hits,
            retrieval.relevance,
            retrieval.formulations,
            retrieval.covered,
            retrieval.missing,
            retrieval.where,
            notices=notices,
            evidence=evidence,
        )
        return answer, turn

    def _refused(self, message: str, text: str) -> tuple[Answer, Turn]:
        """A turn whose request could not be applied: one message, the filter and topic unchanged."""
        turn = Turn(message, "error", self.topic, filter=dict(self.filter), hits=list(self.shown))
        return Answer(message, "", False, False, text, [], where=Filter.of(self.filter)), turn

    def _filter_line(self) -> str:
        return f"In force: {_describe(self.filter)}." if self.filter else "No filter is in force."

    def _filter_emptied(self, searched: str, context: str, filtered, where: Filter, mode: str | None) -> str:
        """The reply when the filter leaves no paper, or none relevant: about the filter, not the corpus."""
        snapshot = self.assistant.store.snapshot()
        matching = int(where.mask(snapshot.columns).sum())
        described = repr_phrase(_describe(asdict(where)))
        if matching == 0:
            reason, fields = _why_none_match(where, snapshot.columns)
            return (
                f"No paper in this index {reason}, so {repr_phrase(_describe(fields))} matches none of the "
                f"{snapshot.documents} papers. "
                "Say \u201cclear the filters\u201d to search them all."
            )
        everywhere = self.assistant.retrieve(searched, 10, mode, context=context)
        keep = where.mask(snapshot.columns)
        outside = [h for h in everywhere.hits if not keep[snapshot.positions([h.id])[0]]]
        if not outside:
            return (
                f"{matching} paper{'s' if matching != 1 else ''} match {described}, and none is about this; "
                + nothing_relevant(everywhere.missing, everywhere.covered, [])
            )
        named = "; ".join(h.title for h in outside[:3])
        about = " or ".join(map(repr_phrase, filtered.missing[:1] or [searched]))
        return (
            f"{matching} paper{'s' if matching != 1 else ''} match {described}; none is about {about}. "
            f"{len(outside)} outside the filter {'are' if len(outside) != 1 else 'is'}: {named}"
            f"{' and more' if len(outside) > 3 else ''}. Say \u201cclear the filters\u201d to see them."
        )

    def _authors_shown(self, number: int) -> list[str]:
        """The authors of paper [number] (-1: the last) of the last list shown; [] when there is none."""
        shown = self.shown
        if not shown or not (1 <= number <= len(shown) or number == -1):
            return []
        doc_id = shown[number - 1 if number > 0 else -1]
        paper = self.assistant.store.snapshot().papers([doc_id]).get(doc_id)
        return list(paper.authors) if paper else []

    def _pointed(self, message: str, pointer: Pointer, k: int, mode: str | None) -> tuple[Answer, Turn]:
        """ "more like [n]", "compare [1] and [3]", "the second one": the papers the last answer showed."""
        shown = self.shown
        positions = [len(shown) if n == -1 else n for n in pointer.numbers]
        for number in positions:
            if not 1 <= number <= len(shown):
                raise PaperchatError(f"there is no [{number}] in the previous answer: it showed [1] to [{len(shown)}]")
        ids = [shown[n - 1] for n in positions]
        papers = self.assistant.store.snapshot().papers(ids)
        missing = [i for i in ids if i not in papers]
        if missing:
            raise PaperchatError(f"paper {missing[0]!r} is no longer in this index")
        snapshot = self.assistant.store.snapshot()
        where = Filter.of(self.filter)
        table = []
        if pointer.action == "more like":
            source = papers[ids[0]]
            hits = self.assistant.similar(source.id, k, mode, where=where)
            terms = snapshot.tokenizer.tokens(source.title)
            text, evidence = compose_answer(hits, terms, snapshot.tokenizer, snapshot.bm25.idf(terms))
            query, searched = f"more like: {source.title}", [Formulation(source.title, 1.0, "more like")]
        else:
            evidence = []
            hits = [self.assistant.hit(doc_id, number) for doc_id, number in zip(ids, positions)]
            if pointer.action == "compare":
                table = self.assistant.compare(ids)
                text = table_text(table, "text", positions).rstrip()
            else:  # "about [2]": the paper's opening
                text = " ".join(f"[{h.rank}] {h.title}: {' '.join(split_sentences(h.abstract)[:2])}" for h in hits)
            query = f"{pointer.action}: " + " | ".join(hit.title for hit in hits)
            searched = [Formulation(hit.title, 1.0, pointer.action) for hit in hits]
        turn = Turn(
            message, pointer.action, self.topic, searched, dict(self.filter), [h.id for h in hits], relevant=bool(hits)
        )
        answer = Answer(
            message, query, True, bool(hits), text, hits, 1.0, searched, where=where, evidence=evidence, table=table
        )
        return answer, turn

    def _llm_rewrite(self, llm, message: str, notices: list[str]) -> str | None:
        """The LLM's stand-alone version of a follow-up, or None (the rule-based rewrite is used) when it fails."""
        try:
            history = [t.message for t in self.turns]
            return clean_rewrite(llm.complete(rewrite_messages(message, history), max_tokens=64))
        except LLMError as exc:
            notices.append(f"The follow-up was rewritten by rule, not by the model: {exc}.")
            return None

    # -- session files -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "paperchat_session": SESSION_FORMAT,
            "index": self.assistant.location,
            "fingerprint": self.assistant.store.repository.fingerprint(),
            "filter": self.filter,
            "turns": [turn.to_dict() for turn in self.turns],
        }

    def save(self, path: str | Path) -> None:
        """Write the session file atomically (a crash leaves the previous version)."""
        write_text_atomically(Path(path), json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, assistant: Assistant, path: str | Path) -> Conversation:
        """The conversation of a session file, or a new one when the file does not exist."""
        path = Path(path)
        if not path.exists():
            return cls(assistant)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or record.get("paperchat_session") != SESSION_FORMAT:
                raise ValueError("not a paperchat session")
            conversation = cls(assistant, [Turn.from_dict(t) for t in record["turns"]], record.get("fingerprint"))
            Filter.of(conversation.filter)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise PaperchatError(f"{path}: not a paperchat session file ({exc})") from None
        return conversation


def _describe(values: Mapping) -> str:
    return ", ".join(
        f"{key} {value}" if key in ("since", "until") else f"{key}={value}"
        for key, value in values.items()
        if value is not None
    )


def _why_none_match(where: Filter, columns) -> tuple[str, dict]:
    """The condition no paper of the index can meet, in words ("has a date"), and the filter fields it concerns."""
    present = {
        "has a date": (("since", "until"), columns.date_from > 0),
        "lists its authors": (("author",), columns.authors.lengths() > 2),  # packed: "||" when empty
        "names a venue": (("venue",), columns.venue.lengths() > 0),
        "has an arXiv category": (("category",), columns.categories.lengths() > 2),
        "links its code": (("has_code",), columns.has_code),
    }
    asked = {key: value for key, value in asdict(where).items() if value not in (None, False)}
    for reason, (names, rows) in present.items():
        fields = {name: asked[name] for name in names if name in asked}
        if fields and not rows.any():
            return reason, fields
    return "matches all of these conditions", asked
