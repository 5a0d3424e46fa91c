"""`Assistant`: the public Python API every surface (CLI, Gradio, eval) goes through."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from paperchat.chat import (
    Answer,
    AnswerEvent,
    Formulation,
    compose_answer,
    content_words,
    fallback,
    formulations,
    nothing_relevant,
    rewrite_follow_up,
    search_terms,
    written_answer,
)
from paperchat.citations import CitationChecker
from paperchat.export import export
from paperchat.filters import Filter, conversation_filter, filter_requests
from paperchat.hits import Hit
from paperchat.index.bm25 import BM25Params
from paperchat.index.embeddings import Embedder
from paperchat.index.errors import PaperchatError
from paperchat.index.loaders import LoadReport, ingest_filter, load_bundled, load_paths
from paperchat.index.store import IngestReport, Store
from paperchat.llm import LLM, LLMError, answer_messages, clean_rewrite, rewrite_messages
from paperchat.search import Retrieval, Searcher
from paperchat.settings import Settings
from paperchat.snippets import split_sentences

NAME_CLOSEST = 0.1  # a declined question names its closest papers when the gate gave it at least this chance


class Assistant:
    """Search (and chat over) one paperchat index.

    >>> from paperchat import Assistant
    >>> assistant = Assistant.open()            # builds the bundled corpus on first use
    >>> for hit in assistant.search("training-free detection of LLM text", k=3):
    ...     print(hit.rank, hit.title, hit.why())
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.searcher = Searcher(store, settings)
        self.llm = LLM.from_settings(settings)  # None unless llm_url is set: then no network call is ever made
        self._checked_at = time.monotonic()
        self._refresh_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        index: str | Path | None = None,
        *,
        bootstrap: bool = True,
        create: bool = True,
        load_model: bool = True,
        progress: bool = True,
        notify: Callable[[str], None] | None = None,
        **settings,
    ) -> Assistant:
        """Open (or create) the index; an empty index is filled from the bundled corpus when `bootstrap`.

        Without `create`, a local index folder must already exist. `index` and the keyword arguments
        override `Settings` fields (and PAPERCHAT_* variables).
        """
        resolved = Settings.load(index=index, **settings)
        embedder = Embedder(
            resolved.model, resolved.device, resolved.batch_size, resolved.query_backend, resolved.cache_dir
        )
        store = Store(
            resolved.index,
            embedder,
            collection=resolved.collection,
            chroma_url=resolved.chroma_url,
            engine=resolved.engine,
            bm25=BM25Params(resolved.bm25_k1, resolved.bm25_b),
            notify=notify,
            write_batch=resolved.write_batch,
            lock_timeout=resolved.lock_timeout,
            create=create,
        )
        assistant = cls(resolved, store)
        announce = f"the index at {assistant.location} is new: building it from the bundled corpus (380 papers, once)"
        if not (bootstrap and store.fill_new(lambda: load_bundled()[0], announce, progress)):
            store.refresh()
        if load_model:
            embedder.encode_query("warm-up")  # model load and first-call overhead happen here, not in the first search
            if assistant.llm:
                embedder.encode(["warm-up"])  # the citation checker embeds sentences with the full model
        return assistant

    @property
    def location(self) -> str:
        return self.settings.chroma_url or str(self.settings.index)

    def ingest(
        self,
        paths: Iterable[str | Path] | None = None,
        progress: bool = True,
        fmt: str | None = None,
        categories: Iterable[str] = (),
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[LoadReport, IngestReport]:
        """Load files (none: the bundled corpus) and add new or changed papers to the index.

        `fmt` forces a format (else it is recognised from the content); `categories`, `since` and
        `until` keep only matching papers while the files are read (a slice of an arXiv snapshot).
        """
        keep = ingest_filter(categories, since, until)
        papers, report = load_paths(list(paths), fmt, keep) if paths else load_bundled()
        return report, self.store.ingest(papers, progress=progress)

    def remove(self, ids: Iterable[str]) -> list[str]:
        """Delete papers by id from Chroma and the derived snapshot; returns the ids that existed."""
        return self.store.remove(ids)

    def refresh(self, force: bool = False) -> None:
        """Pick up writes made by other processes or replicas (checked at most every `refresh_seconds`)."""
        now = time.monotonic()
        if not force and now - self._checked_at < self.settings.refresh_seconds:
            return
        with self._refresh_lock:
            self.store.refresh()  # a store that fails here is tried again at the next call
            self._checked_at = now

    def retrieve(
        self,
        query: str,
        k: int = 10,
        mode: str | None = None,
        gate: bool = True,
        history: Sequence[str] = (),
        where: Filter | Mapping | None = None,
        rewritten: str | None = None,
        **overrides,
    ) -> Retrieval:
        """Ranked hits plus the relevance evidence. With `gate` (the default) `hits` is empty when
        nothing is relevant, as on every surface. After a conversation (`history`: earlier user
        messages, oldest first) the query is searched as weighted formulations with its context
        (`paperchat.chat.formulations`; `Retrieval.formulations` lists them). `where` (a `Filter` or a
        dict of its fields) keeps only matching papers, on both sides before fusion. `rewritten` (an
        LLM's stand-alone version of a follow-up) replaces the rule-based rewrite. `overrides` change
        retrieval settings for this call."""
        self.refresh()
        settings = self.settings.for_retrieval(**overrides) if overrides else None
        searched = formulations(query, self.resolve_history(history), rewritten) if history else query
        return self.searcher.retrieve(searched, k, mode, settings, gate, Filter.of(where))

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str | None = None,
        history: Sequence[str] = (),
        where: Filter | Mapping | None = None,
        **overrides,
    ) -> list[Hit]:
        """The top `k` papers for `query` (mode: hybrid, bm25 or vector), best first, whatever the relevance gate
        says."""
        return self.retrieve(query, k, mode, gate=False, history=history, where=where, **overrides).hits

    def export(self, hits: Sequence[Hit], fmt: str = "bibtex") -> str:
        """The hits as a BibTeX, RIS or CSL-JSON document for a reference manager."""
        return export(hits, fmt)

    def info(self) -> dict:
        repository = self.store.repository
        metadata = repository.metadata()
        return {
            "index": self.location,
            "model": metadata.get("model", self.settings.model),
            "dimension": metadata.get("dimension"),
            "engine": self.settings.engine,
            "documents": repository.count(),
            "passages": repository.passage_count(),
            "collection": self.settings.collection,
            "fusion": self.settings.fusion,
            "llm": self.llm.describe() if self.llm else "none (extractive answers; no network calls)",
        }

    def ask(
        self,
        message: str,
        history: Sequence[str] = (),
        k: int = 5,
        mode: str | None = None,
        where: Filter | Mapping | None = None,
        write: bool | None = None,
    ) -> Answer:
        """Answer a chat message: resolve a follow-up against `history` (earlier user messages),
        search, and answer with [n] citations, or say that nothing is relevant.

        The answer is extractive unless an LLM is configured (`llm_url`): then the model writes it
        from the top abstracts and every citation is checked (`ask_stream` streams it; `write=False`
        keeps the extractive answer). Filters asked for in the chat ("only the ones since 2024",
        "just cs.CV", "with code", "by the same authors", "clear the filters") hold for the following
        turns too, on top of `where`; a message that only asks for a filter searches the previous
        question again, filtered.
        """
        for event in self.ask_stream(message, history, k, mode, where, write):
            if event.kind == "answer":
                return event.answer
        raise AssertionError("ask_stream ends with an answer")

    def ask_stream(
        self,
        message: str,
        history: Sequence[str] = (),
        k: int = 5,
        mode: str | None = None,
        where: Filter | Mapping | None = None,
        write: bool | None = None,
    ) -> Iterator[AnswerEvent]:
        """`ask`, step by step: a `sources` event once the papers are found (before any token), a
        `token` event for each piece of a written answer, and a final `answer` event with the checked
        answer. Any failure of the LLM ends in the extractive answer with a one-line notice."""
        if write and self.llm is None:
            raise PaperchatError(
                "no LLM is configured: set llm_url (--llm-url or PAPERCHAT_LLM_URL) for written answers"
            )
        llm = self.llm if write is not False else None
        history = [turn for turn in history if turn and turn.strip()]
        extractive = self._extractive(message, history, k, mode, where, llm)
        yield AnswerEvent("sources", extractive)
        if llm is None or not extractive.hits or extractive.searched[:1] and extractive.searched[0].role == "more like":
            yield AnswerEvent("answer", extractive)  # nothing to write from, or a list of similar papers is the answer
            return
        # A message that only sets a filter ("only the ones since 2024") asks the previous question again.
        question = message if content_words(filter_requests(message)[1]) else extractive.query
        pieces: list[str] = []
        try:
            for piece in llm.stream(
                answer_messages(question, history, extractive.hits, self.settings.llm_abstract_chars)
            ):
                pieces.append(piece)
                yield AnswerEvent("token", extractive, piece)
        except LLMError as exc:
            yield AnswerEvent(
                "answer", fallback(extractive, f"No written answer: {exc}; showing the extractive answer.")
            )
            return
        checker = CitationChecker(self.store.embedder.encode, self.store.snapshot().tokenizer)
        sentences = checker.check("".join(pieces), [(hit.title, hit.abstract) for hit in extractive.hits])
        yield AnswerEvent("answer", written_answer(extractive, sentences, llm.describe()))

    def _extractive(
        self,
        message: str,
        history: list[str],
        k: int,
        mode: str | None,
        where: Filter | Mapping | None,
        llm: LLM | None,
    ) -> Answer:
        """The retrieval for a chat message and its extractive answer (or the "nothing relevant" reply)."""
        similar_to = _more_like(message)
        if similar_to is not None and history:
            return self._more_like(message, history, similar_to, k, mode)
        asked, rest = filter_requests(message)
        authors = []
        if asked.get("same_authors") and history:
            previous = self.search(history[-1], 1, mode, history=history[:-1])
            authors = previous[0].citation.authors if previous else []
        given = Filter.of(where)
        merged = {
            **({name: value for name, value in asdict(given).items() if value is not None} if given else {}),
            **conversation_filter([*history, message], authors),
        }
        if content_words(rest) or not history:
            searched, context = (rest or message), history
        else:  # only a filter: the previous question again
            searched, context = history[-1], history[:-1]
        notices: list[str] = []
        rewritten = self._llm_rewrite(llm, searched, context, notices) if llm and context else None
        retrieval = self.retrieve(searched, k, mode, history=context, where=merged or None, rewritten=rewritten)
        hits = retrieval.hits
        snapshot = self.store.snapshot()
        terms = search_terms(" ".join(f.text for f in retrieval.formulations), snapshot.tokenizer)
        if hits:
            text = compose_answer(hits, terms, snapshot.tokenizer, snapshot.bm25.idf(terms))
        else:
            text = nothing_relevant(
                retrieval.missing, retrieval.covered, retrieval.closest if retrieval.relevance >= NAME_CLOSEST else []
            )
        return Answer(
            message,
            retrieval.query,
            len(retrieval.formulations) > 1,
            bool(hits),
            text,
            hits,
            retrieval.relevance,
            retrieval.formulations,
            retrieval.covered,
            retrieval.missing,
            retrieval.where,
            notices=notices,
        )

    def _llm_rewrite(self, llm: LLM, message: str, history: list[str], notices: list[str]) -> str | None:
        """The LLM's stand-alone version of a follow-up, or None (the rule-based rewrite is used) when it fails."""
        try:
            return clean_rewrite(llm.complete(rewrite_messages(message, history), max_tokens=64))
        except LLMError as exc:
            notices.append(f"The follow-up was rewritten by rule, not by the model: {exc}.")
            return None

    def resolve_history(self, history: Sequence[str]) -> str:
        """The last history turn as a stand-alone question (follow-ups rewritten in turn): the context of the next
        message."""
        previous = ""
        for turn in history:
            turn = filter_requests(turn)[1] if turn else ""
            if content_words(turn) and _more_like(turn) is None:
                previous = rewrite_follow_up(turn, previous) if previous else turn
        return previous

    def similar(self, doc_id: str, k: int = 5, mode: str | None = None) -> list[Hit]:
        """Papers like `doc_id`: its title and opening sentences used as the query, itself left out."""
        paper = self.store.snapshot().papers([doc_id]).get(doc_id)
        if paper is None:
            raise PaperchatError(f"no paper with id {doc_id!r} in the index")
        sentences = split_sentences(paper.abstract)
        query = " ".join([paper.title] + sentences[:2])
        hits = [h for h in self.search(query, k + 1, mode) if h.id != doc_id][:k]
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return hits

    def _more_like(self, message: str, history: list[str], number: int, k: int, mode: str | None) -> Answer:
        earlier = self.search(history[-1], max(number, 1), mode, history=history[:-1])
        if not 1 <= number <= len(earlier):
            raise PaperchatError(f"there is no source [{number}] in the previous answer")
        source = earlier[number - 1]
        hits = self.similar(source.id, k, mode)
        snapshot = self.store.snapshot()
        terms = snapshot.tokenizer.tokens(source.title)
        text = compose_answer(hits, terms, snapshot.tokenizer, snapshot.bm25.idf(terms))
        return Answer(
            message,
            f"more like: {source.title}",
            True,
            bool(hits),
            text,
            hits,
            1.0,
            [Formulation(source.title, 1.0, "more like")],
        )


def _more_like(message: str) -> int | None:
    match = re.fullmatch(
        r"\s*(?:show\s+)?(?:more|papers|others?)\s+(?:like|similar\s+to)\s+\[?(\d{1,3})\]?\s*[.!?]*\s*", message, re.I
    )
    return int(match.group(1)) if match else None
