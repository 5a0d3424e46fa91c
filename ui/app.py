"""The Gradio web chat: layout and event wiring over `paperchat.Assistant`; no retrieval logic here."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import weakref
from pathlib import Path

import gradio as gr

from paperchat import Assistant, PaperchatError
from paperchat.chat import Answer
from paperchat.compare import table_text
from paperchat.conversation import Conversation
from paperchat.export import export
from paperchat.filters import Filter
from paperchat.settings import MODES
from paperchat.ui.render import (
    CSS,
    SCRIPT,
    digest_markdown,
    escape_markdown,
    reply_markdown,
    saved_markdown,
    searched_markdown,
    sources_panel,
)

EXAMPLES = [
    "Is there a training-free way to detect LLM-generated text?",
    "pruning large language models",
    "What about for vision transformers?",
    "knowledge distillation for code models",
    "only the ones with code",
    "more like [1]",
    "clear the filters",
]
WRITING = "…"  # the bubble's content until the first token (or the extractive answer) arrives
EMPTY_PROMPT = (
    "Ask me about the papers: a research question, a method name such as LoRA, or a topic like 'machine unlearning'."
)


def filter_row(where: Filter | None) -> str:
    """The filter row under the chat: what the last answer was filtered by ("Filter: none" when nothing)."""
    return f"**Filter:** {escape_markdown(where.describe())}" if where else "**Filter:** none"


FILTER_FIELDS = ("since", "until", "author", "category", "venue", "source", "has_code")


def _filter_value(value):
    """A filter box's value: blank text and an unticked box mean "no condition"."""
    if isinstance(value, str):
        return value.strip() or None
    return True if value else None


SOURCE_FILES = (("bibtex", ".bib"), ("ris", ".ris"))  # an answer's sources, in two citation formats
TABLE_FILES = (("csv", ".csv"), ("markdown", ".md"))  # a "compare" answer's table


def answer_files(answer: Answer) -> list[tuple[str, str, str | None]]:
    """(name prefix, suffix, text) of each file an answer offers, in the order of the download buttons: its
    sources in BibTeX and RIS, its table in CSV and Markdown; the text is None where there is nothing to offer."""
    numbers = [hit.rank for hit in answer.hits]
    return [
        ("paperchat-sources-", suffix, export(answer.hits, fmt) if answer.hits else None)
        for fmt, suffix in SOURCE_FILES
    ] + [
        ("paperchat-table-", suffix, table_text(answer.table, fmt, numbers) if answer.table else None)
        for fmt, suffix in TABLE_FILES
    ]


def compare_message(numbers: list[int]) -> str:
    """The chat message the Compare button sends for the ticked sources: "compare [1], [2] and [4]"."""
    marks = [f"[{n}]" for n in sorted(set(numbers))]
    return "compare " + (", ".join(marks[:-1]) + " and " + marks[-1] if len(marks) > 1 else marks[0])


class Downloads:
    """The files behind the download buttons: one folder per browser session holding only the latest
    answer's files. The next answer's files replace them, the session's end (or "New chat") removes the
    folder, and the process's exit removes them all. The folders lie in Gradio's own file folder
    (`parent`), from which Gradio serves a file where it is instead of keeping a copy of each."""

    def __init__(self, parent: str) -> None:
        Path(parent).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="paperchat-downloads-", dir=parent))
        weakref.finalize(self, shutil.rmtree, self.root, ignore_errors=True)

    def _folder(self, session: str) -> Path:
        """The session's folder; the name is a digest, as the session id comes from the browser."""
        return self.root / hashlib.sha256(session.encode()).hexdigest()[:32]

    def write(self, session: str, answer: Answer) -> list[str | None]:
        """The answer's files (`answer_files`: a path each, None where it has nothing to offer); the session's
        earlier files are deleted. Each answer's files have new names, so that a browser never shows a cached
        earlier download."""
        folder = self._folder(session)
        folder.mkdir(exist_ok=True)
        paths: list[str | None] = []
        for prefix, suffix, text in answer_files(answer):
            paths.append(None)
            if text is not None:
                descriptor, paths[-1] = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=folder)
                with open(descriptor, "w", encoding="utf-8") as handle:
                    handle.write(text)
        for earlier in folder.iterdir():
            if str(earlier) not in paths:
                earlier.unlink(missing_ok=True)
        return paths

    def end(self, session: str) -> None:
        shutil.rmtree(self._folder(session), ignore_errors=True)


def build_app(assistant: Assistant) -> gr.Blocks:
    """The chat page (a Chat tab and a Digest tab) plus two named API endpoints: `/search` (hits as JSON) and
    `/chat` (a cited answer as JSON)."""

    def side_outputs(request: gr.Request, answer: Answer) -> tuple:
        """What the papers found change beside the chat: the sources panel, the four download buttons and the filter
        row (the Compare box waits for the answer: `offered`)."""
        files = downloads.write(request.session_hash, answer)
        return (
            sources_panel(answer.hits),
            *files[:2],
            *(gr.update(value=path, visible=path is not None) for path in files[2:]),
            filter_row(answer.where),
            gr.update(),
        )

    def offered(answer: Answer, conversation: Conversation):
        """The sources the Compare box offers: the list "[n]" points into, new when this answer showed one (a
        "compare" or "about" answer keeps the list it points into)."""
        if not answer.hits or [hit.id for hit in answer.hits] != conversation.shown:
            return gr.update()
        return gr.update(choices=[(f"[{hit.rank}] {hit.title}", hit.rank) for hit in answer.hits], value=[])

    def respond(
        request: gr.Request,
        message: str,
        history: list[dict],
        conversation: Conversation | None,
        k: int,
        mode: str,
        *filter_values,
    ):
        """A generator: the sources panel first, then a written answer token by token, then the
        checked answer. Gradio sends each streamed update as a diff against the previous one, so
        a token travels as an append to the last message; the side outputs (sources, downloads,
        filter) are yielded unchanged, which sends nothing for them (a bare `gr.update()` there instead made the
        download buttons download nothing); the Compare box changes with the answer. The browser session's
        `Conversation` (held in a `gr.State`) remembers the turns, what they showed and the filter."""
        history = list(history or [])
        conversation = conversation or assistant.chat()
        side = (gr.update(),) * len(beside)  # kept until a search is done
        if not message or not message.strip():
            history.append({"role": "assistant", "content": EMPTY_PROMPT})
            yield "", history, conversation, *side
            return
        history.append({"role": "user", "content": message})
        try:
            where = Filter.of(dict(zip(FILTER_FIELDS, (_filter_value(v) for v in filter_values))))
            events = conversation.ask_stream(message, int(k), mode, where=where)
            found = next(events).answer
            side = side_outputs(request, found)
            lead = searched_markdown(found)
            history.append({"role": "assistant", "content": lead + WRITING})
            yield "", history, conversation, *side
            streamed = ""
            for event in events:
                if event.kind == "token":
                    streamed += event.token
                    history[-1] = {"role": "assistant", "content": lead + escape_markdown(streamed)}
                else:
                    history[-1] = {"role": "assistant", "content": reply_markdown(event.answer)}
                    panel = sources_panel(event.answer.hits, event.answer.evidence)
                    side = (panel, *side[1:-1], offered(event.answer, conversation))
                yield "", history, conversation, *side
        except PaperchatError as exc:
            reply = {"role": "assistant", "content": f"⚠️ {escape_markdown(str(exc))}"}
            history[-1:] = [history[-1], reply] if history[-1]["role"] == "user" else [reply]
            yield "", history, conversation, *side

    def compare_ticked(request: gr.Request, ticked: list[int], history, conversation, k, mode, *filter_values):
        """The Compare button: the ticked sources compared as if the user had typed "compare [1] and [3]"."""
        if not ticked:
            history = [*(history or []), {"role": "assistant", "content": "Tick the sources to compare first."}]
            yield "", history, conversation, *(gr.update(),) * len(beside)
            return
        yield from respond(request, compare_message(ticked), history, conversation, k, mode, *filter_values)

    def watch_topic(conversation: Conversation | None) -> tuple[str, str]:
        """The Watch button: save the chat's current question (as it was searched, with the filter in force)."""
        topic = conversation.topic if conversation else ""
        if not topic:
            return "Ask a question first; **Watch** then saves it for the Digest tab.", gr.update()
        try:
            saved = assistant.watch(topic, **conversation.filter)
        except PaperchatError as exc:
            return f"⚠️ {escape_markdown(str(exc))}", gr.update()
        where = f" ({escape_markdown(Filter.of(conversation.filter).describe())})" if conversation.filter else ""
        return (
            f"Watching *{escape_markdown(topic)}*{where}: the Digest tab lists the new papers that answer it.",
            saved_markdown(saved),
        )

    def saved_now() -> str:
        """The saved questions as they are on disk (an unreadable file is a message, not a page that fails)."""
        try:
            return saved_markdown(assistant.watchlist.questions())
        except PaperchatError as exc:
            return f"⚠️ {escape_markdown(str(exc))}"

    def unwatch(number: float | None) -> tuple[str, str]:
        try:
            gone = assistant.unwatch(int(number or 0))
        except PaperchatError as exc:
            return saved_now(), f"⚠️ {escape_markdown(str(exc))}"
        return saved_now(), f"Removed *{escape_markdown(gone.question)}*."

    def make_digest(since: str, keep: bool) -> str:
        try:
            return digest_markdown(assistant.digest(since.strip() or None, mark=not keep))
        except PaperchatError as exc:
            return f"⚠️ {escape_markdown(str(exc))}"

    def search_api(query: str, k: int = 10, mode: str = "hybrid") -> dict:
        """Ranked hits for a query: {query, mode, took_ms, relevant, relevance, hits: [Hit...]}; no hits when nothing
        is relevant."""
        try:
            return assistant.retrieve(query, int(k), mode).to_dict()
        except PaperchatError as exc:
            return {"error": str(exc)}

    def chat_api(message: str, history: str = "[]", k: int = 5, mode: str = "hybrid") -> dict:
        """A cited answer; `history` is a JSON list of the earlier user messages, oldest first."""
        try:
            earlier = json.loads(history or "[]")
            if not isinstance(earlier, list):
                raise PaperchatError("history must be a JSON list of earlier messages")
            return assistant.ask(message, [str(m) for m in earlier], int(k), mode).to_dict()
        except (PaperchatError, json.JSONDecodeError) as exc:
            return {"error": str(exc)}

    with gr.Blocks(title="paperchat") as app:
        writer = f"written by {assistant.llm.describe()}, every citation checked" if assistant.llm else "no LLM needed"
        gr.Markdown(
            f"## paperchat\nCited answers from {assistant.info()['documents']} paper abstracts · "
            f"hybrid BM25 + vector search, {escape_markdown(writer)}."
        )
        with gr.Tabs():
            with gr.Tab("Chat", elem_id="chat-tab"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(label="Chat", height=520, elem_id="chat")
                        conversation = gr.State(None)  # this browser session's Conversation, made at its first message
                        question = gr.Textbox(
                            placeholder="Ask about the papers…", show_label=False, elem_id="question", autofocus=True
                        )
                        with gr.Row():
                            send = gr.Button("Ask", variant="primary", elem_id="ask")
                            clear = gr.Button("New chat")
                            watch = gr.Button("Watch this question", elem_id="watch")
                        watched = gr.Markdown("", elem_id="watch-status")
                        with gr.Row():
                            k = gr.Slider(1, 20, value=5, step=1, label="results")
                            mode = gr.Radio(list(MODES), value="hybrid", label="mode")
                        with gr.Row():
                            active = gr.Markdown(filter_row(None), elem_id="active-filter")
                            reset = gr.Button("Clear filters", elem_id="clear-filters", size="sm")
                        with gr.Accordion("Filters (kept for the whole chat)", open=False, elem_id="filters"):
                            with gr.Row():
                                since = gr.Textbox(
                                    label="since", placeholder="2024 or 2024-06-01", elem_id="filter-since"
                                )
                                until = gr.Textbox(label="until", placeholder="2024-12", elem_id="filter-until")
                                author = gr.Textbox(label="author", elem_id="filter-author")
                            with gr.Row():
                                category = gr.Textbox(label="category", placeholder="cs.CL", elem_id="filter-category")
                                venue = gr.Textbox(label="venue", elem_id="filter-venue")
                                source = gr.Textbox(label="source", placeholder="Jun 6", elem_id="filter-source")
                                has_code = gr.Checkbox(label="has code", elem_id="filter-has-code")
                        gr.Examples(EXAMPLES, inputs=question, label="Examples (click, then Ask)")
                    with gr.Column(scale=2):
                        gr.Markdown("### Sources")
                        sources = gr.HTML(sources_panel([]), elem_id="sources")
                        with gr.Row():
                            bibtex = gr.DownloadButton(
                                "Download sources (BibTeX)", value=None, elem_id="download-bibtex"
                            )
                            ris = gr.DownloadButton("Download sources (RIS)", value=None, elem_id="download-ris")
                        with gr.Accordion("Compare sources", open=False, elem_id="compare-box"):
                            pick = gr.CheckboxGroup([], label="Tick the sources to line up", elem_id="compare-pick")
                            compare = gr.Button("Compare", elem_id="compare")
                        with gr.Row():
                            table_csv = gr.DownloadButton(
                                "Download table (CSV)", value=None, visible=False, elem_id="download-table-csv"
                            )
                            table_md = gr.DownloadButton(
                                "Download table (Markdown)", value=None, visible=False, elem_id="download-table-md"
                            )
            with gr.Tab("Digest", elem_id="digest-tab") as digest_tab:
                gr.Markdown(
                    "Saved questions (**Watch this question** in the chat, or `paperchat watch add`) and the new "
                    "papers that answer them: ingest new papers, then make a digest. A paper is listed when the "
                    "relevance gate, judging it alone, accepts it for the question."
                )
                saved = gr.Markdown(saved_now(), elem_id="saved-questions")
                with gr.Row():
                    number = gr.Number(label="question number", precision=0, minimum=1, elem_id="unwatch-number")
                    remove = gr.Button("Remove saved question", elem_id="unwatch")
                removed = gr.Markdown("", elem_id="unwatch-status")
                with gr.Row():
                    digest_since = gr.Textbox(
                        label="papers dated since (blank: added since the last digest)",
                        placeholder="2025-01-01",
                        elem_id="digest-since",
                    )
                    keep = gr.Checkbox(label="keep them new (the next digest lists them again)", elem_id="digest-keep")
                make = gr.Button("Make digest", variant="primary", elem_id="make-digest")
                digest_view = gr.Markdown("", elem_id="digest")
        downloads = Downloads(bibtex.GRADIO_CACHE)

        def session_ended(request: gr.Request) -> None:
            downloads.end(request.session_hash)

        def new_chat(request: gr.Request):
            downloads.end(request.session_hash)
            hidden = gr.update(value=None, visible=False)
            return [], None, sources_panel([]), None, None, hidden, hidden, filter_row(None), gr.update(choices=[])

        def clear_filters(conversation: Conversation | None):
            """The one-click removal: the filter boxes and the filter the chat asked for."""
            if conversation is not None:
                conversation.clear_filter()
            return "", "", "", "", "", "", False, conversation, filter_row(None)

        filter_inputs = [since, until, author, category, venue, source, has_code]
        beside = [sources, bibtex, ris, table_csv, table_md, active, pick]  # what `side_outputs` yields, in order
        inputs, outputs = [question, chatbot, conversation, k, mode, *filter_inputs], [question, chatbot, conversation]
        question.submit(respond, inputs, outputs + beside, api_visibility="private")
        send.click(respond, inputs, outputs + beside, api_visibility="private")
        compare.click(compare_ticked, [pick, *inputs[1:]], outputs + beside, api_visibility="private")
        clear.click(new_chat, None, [chatbot, conversation, *beside], api_visibility="private")
        reset.click(clear_filters, conversation, [*filter_inputs, conversation, active], api_visibility="private")
        watch.click(watch_topic, conversation, [watched, saved], api_visibility="private")
        remove.click(unwatch, number, [saved, removed], api_visibility="private")
        make.click(make_digest, [digest_since, keep], digest_view, api_visibility="private")
        digest_tab.select(saved_now, None, saved, api_visibility="private")
        app.unload(session_ended)
        gr.api(search_api, api_name="search")
        gr.api(chat_api, api_name="chat")
    return app


def check_port(host: str, port: int) -> None:
    """Fail early, with a clear message, when the port cannot be served (before any model loads)."""
    import socket

    if not 1 <= port <= 65535:
        raise PaperchatError(f"--port must be between 1 and 65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PaperchatError(
                f"cannot serve on {host}:{port} ({exc.strerror or exc}); choose another with --port"
            ) from None


def launch(
    assistant: Assistant,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    auth: str | None = None,
    block: bool = True,
):
    """Serve the app; binds to loopback unless `host` says otherwise. `auth` is 'user:password'."""
    credentials = None
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise PaperchatError("--auth must look like user:password")
        credentials = (user, password)
    app = build_app(assistant)
    app.queue(default_concurrency_limit=8)
    app.launch(
        blocked_paths=[
            str(assistant.settings.index),
            str(assistant.settings.cache_dir),
        ],  # never served, whatever Gradio allows by default
        server_name=host,
        server_port=port,
        share=share,
        auth=credentials,
        show_error=False,
        prevent_thread_lock=not block,
        quiet=not block,
        css=CSS,
        head=SCRIPT,
    )
    return app
