"""`Assistant`: the public Python API every surface (CLI, Gradio, eval) goes through."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from paperchat.chat import Answer, AnswerEvent, formulations
from paperchat.citations import SUPPORTED, CitationChecker
from paperchat.compare import ASPECT_TITLES, DEFAULT_ASPECTS, Row, compare_row, read_drafts, with_drafts
from paperchat.conversation import Conversation, next_topic
from paperchat.export import export
from paperchat.filters import Filter
from paperchat.hits import Hit, citation_of
from paperchat.index.bm25 import BM25Params
from paperchat.index.chroma import HnswConfig
from paperchat.index.embeddings import Embedder
from paperchat.index.errors import PaperchatError
from paperchat.index.loaders import LoadReport, ingest_filter, load_bundled, load_paths
from paperchat.index.store import IngestReport, Store
from paperchat.llm import LLM, cell_messages
from paperchat.search import Retrieval, Searcher
from paperchat.settings import Settings
from paperchat.snippets import split_sentences
from paperchat.watch import DigestEntry, Watched, Watchlist
from paperchat.watch import digest as make_digest


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
            resolved.model,
            resolved.device,
            resolved.batch_size,
            resolved.query_backend,
            resolved.cache_dir,
            resolved.embed_processes,
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
            hnsw=HnswConfig(resolved.hnsw_ef_search, resolved.hnsw_max_neighbors, resolved.hnsw_ef_construction),
            segment_rows=resolved.segment_rows,
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
        context: str | None = None,
        **overrides,
    ) -> Retrieval:
        """Ranked hits plus the relevance evidence. With `gate` (the default) `hits` is empty when
        nothing is relevant, as on every surface. After a conversation (`history`: earlier user
        messages, oldest first) the query is searched as weighted formulations with its context
        (`paperchat.chat.formulations`; `Retrieval.formulations` lists them). `where` (a `Filter` or a
        dict of its fields) keeps only matching papers, on both sides before fusion. `rewritten` (an
        LLM's stand-alone version of a follow-up) replaces the rule-based rewrite. `context` (the previous
        stand-alone question, as a `Conversation` keeps it) stands for `history`. `overrides` change retrieval
        settings for this call."""
        self.refresh()
        settings = self.settings.for_retrieval(**overrides) if overrides else None
        context = self.resolve_history(history) if context is None else context
        searched = formulations(query, context, rewritten) if context else query
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
        """What the index holds. The counts come from the snapshot (current with Chroma once `snapshot()` returns):
        asking an embedded Chroma for a count loads the collection's HNSW graph into memory, 1.7 GB for the
        passages of 1M papers that a searching process never reads by vector."""
        metadata = self.store.repository.metadata()
        snapshot = self.store.snapshot()
        return {
            "index": self.location,
            "model": metadata.get("model", self.settings.model),
            "dimension": metadata.get("dimension"),
            "engine": self.settings.engine,
            "documents": snapshot.documents,
            "passages": snapshot.passage_count,
            "collection": self.settings.collection,
            "ef_search": self.store.repository.search_breadth(),  # Chroma HNSW's, used above 20k papers
            "fusion": self.settings.fusion,
            "llm": self.llm.describe() if self.llm else "none (extractive answers; no network calls)",
        }

    def chat(self) -> Conversation:
        """A new conversation: `conversation.ask(message)` answers each turn and remembers what it showed and the
        filter in force (`paperchat.conversation`)."""
        return Conversation(self)

    def replay(self, history: Sequence[str], k: int = 5, mode: str | None = None) -> Conversation:
        """A conversation whose earlier messages were `history` (oldest first), answered again without an LLM."""
        conversation = self.chat()
        for message in history:
            if message and message.strip():
                conversation.ask(message, k, mode, write=False)
        return conversation

    def ask(
        self,
        message: str,
        history: Sequence[str] = (),
        k: int = 5,
        mode: str | None = None,
        where: Filter | Mapping | None = None,
        write: bool | None = None,
    ) -> Answer:
        """Answer one chat message after `history` (earlier user messages): search, and answer with [n] citations,
        or say that nothing is relevant. For a running chat keep a `chat()` conversation instead.

        The answer is extractive unless an LLM is configured (`llm_url`): then the model writes it
        from the top abstracts and every citation is checked (`ask_stream` streams it; `write=False`
        keeps the extractive answer). Filters asked for in the chat ("only the ones since 2024",
        "just cs.CV", "with code", "by the same authors", "clear the filters") hold for the following
        turns too, on top of `where`; a message that only asks for a filter searches the previous
        question again, filtered.
        """
        return self.replay(history, k, mode).ask(message, k, mode, where, write)

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
        return self.replay(history, k, mode).ask_stream(message, k, mode, where, write)

    def resolve_history(self, history: Sequence[str]) -> str:
        """The last history turn as a stand-alone question (follow-ups rewritten in turn): the context of the next
        message, by the rule a `Conversation` keeps its `topic` by (`paperchat.conversation.next_topic`)."""
        return functools.reduce(next_topic, [turn for turn in history if turn], "")

    def hit(self, doc_id: str, rank: int = 1) -> Hit:
        """The paper `doc_id` as a hit (no scores): a paper the user pointed at rather than searched for."""
        paper = self.store.snapshot().papers([doc_id]).get(doc_id)
        if paper is None:
            raise PaperchatError(f"no paper with id {doc_id!r} in the index")
        snippet = " ".join(split_sentences(paper.abstract)[:2])
        return Hit(
            rank,
            paper.id,
            paper.title,
            snippet,
            0.0,
            0.0,
            None,
            None,
            None,
            citation_of(paper),
            paper.abstract,
            {"code_links": paper.code_links},
        )

    def compare(self, ids: Sequence[str], aspects: Sequence[str] | None = None, write: bool = False) -> list[Row]:
        """A comparison table of the papers `ids`: one row each, one cell per aspect (default: problem, approach, data
        or benchmarks, main result, code), each a sentence quoted from the paper's abstract or empty when it does not
        say (`paperchat.compare`). With `write`, the configured LLM words the cells, each wording checked against
        the abstract: shown where the abstract bears it out, marked beside the quote where it does not."""
        if write and self.llm is None:
            raise PaperchatError("no LLM is configured: set llm_url (--llm-url or PAPERCHAT_LLM_URL) to word the cells")
        snapshot = self.store.snapshot()
        papers = snapshot.papers(list(ids))
        missing = [doc_id for doc_id in ids if doc_id not in papers]
        if missing:
            raise PaperchatError(f"no paper with id {missing[0]!r} in the index")
        wanted = [a.strip() for a in aspects or DEFAULT_ASPECTS if a.strip()] or list(DEFAULT_ASPECTS)
        rows = [compare_row(p.id, p.title, p.abstract, wanted, snapshot.tokenizer.tokens) for p in map(papers.get, ids)]
        if not write:
            return rows
        checker = CitationChecker(self.store.embedder.encode, snapshot.tokenizer)
        return [self._worded(row, papers[row.paper_id].abstract, wanted, checker) for row in rows]

    def _worded(self, row: Row, abstract: str, aspects: list[str], checker: CitationChecker) -> Row:
        """One row with the model's wording of its cells, each checked against the abstract (`with_drafts`)."""
        headings = [ASPECT_TITLES.get(aspect, aspect) for aspect in aspects]
        reply = self.llm.complete(cell_messages(row.title, abstract, headings, self.settings.llm_abstract_chars))
        drafts = read_drafts(reply, aspects)
        supports = checker.supports(list(drafts.values()), [(row.title, abstract)])
        borne_out = {
            aspect: support.sentence
            for aspect, (support,) in zip(drafts, supports)
            if support.score >= SUPPORTED and support.sentence >= 0
        }
        return with_drafts(row, drafts, borne_out)

    @property
    def watchlist(self) -> Watchlist:
        """The saved questions, beside the index (`watch.json`)."""
        return Watchlist(self.settings.index)

    def watch(self, question: str, **filters) -> list[Watched]:
        """Save a question (with `Filter` fields) whose new answers `digest` lists; returns the saved questions."""
        snapshot = self.store.snapshot()
        return self.watchlist.add(question, filters, snapshot.ids.at(snapshot.live_rows()))

    def unwatch(self, number: int) -> Watched:
        """Remove saved question `number` (1-based)."""
        return self.watchlist.remove(number)

    def digest(self, since: str | None = None, mark: bool = True) -> list[DigestEntry]:
        """For each saved question, the papers added since the last digest (or dated on or after `since`) that the
        relevance gate accepts for it, best first, each with its best-matching sentence."""
        self.refresh()
        return make_digest(self, self.watchlist, since, mark)

    def similar(
        self, doc_id: str, k: int = 5, mode: str | None = None, where: Filter | Mapping | None = None
    ) -> list[Hit]:
        """Papers like `doc_id` (among those `where` keeps): its title and opening sentences used as the query,
        itself left out."""
        paper = self.store.snapshot().papers([doc_id]).get(doc_id)
        if paper is None:
            raise PaperchatError(f"no paper with id {doc_id!r} in the index")
        sentences = split_sentences(paper.abstract)
        query = " ".join([paper.title] + sentences[:2])
        hits = [h for h in self.search(query, k + 1, mode, where=where) if h.id != doc_id][:k]
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return hits
