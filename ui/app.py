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
from paperchat.conversation import Conversation
from paperchat.export import export
from paperchat.filters import Filter
from paperchat.settings import MODES
from paperchat.ui.render import CSS, SCRIPT, escape_markdown, reply_markdown, searched_markdown, sources_panel

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


DOWNLOAD_FORMATS = {"bibtex": ".bib", "ris": ".ris"}


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

    def write(self, session: str, hits) -> list[str | None]:
        """The answer's sources as a BibTeX and a RIS file (None each when there are none); the
        session's earlier files are deleted. Each answer's files have new names, so that a browser
        never shows a cached earlier download."""
        folder = self._folder(session)
        folder.mkdir(exist_ok=True)
        paths: list[str | None] = [None] * len(DOWNLOAD_FORMATS)
        if hits:
            for number, (fmt, suffix) in enumerate(DOWNLOAD_FORMATS.items()):
                descriptor, paths[number] = tempfile.mkstemp(suffix=suffix, prefix="paperchat-sources-", dir=folder)
                with open(descriptor, "w", encoding="utf-8") as handle:
                    handle.write(export(hits, fmt))
        for earlier in folder.iterdir():
            if str(earlier) not in paths:
                earlier.unlink(missing_ok=True)
        return paths

    def end(self, session: str) -> None:
        shutil.rmtree(self._folder(session), ignore_errors=True)


def build_app(assistant: Assistant) -> gr.Blocks:
    """The chat page plus two named API endpoints: `/search` (hits as JSON) and `/chat` (a cited answer as JSON)."""

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
        filter) are yielded unchanged, which sends nothing for them. The browser session's
        `Conversation` (held in a `gr.State`) remembers the turns, what they showed and the filter."""
        history = list(history or [])
        conversation = conversation or assistant.chat()
        side = (
            gr.update(),
            gr.update(),
            gr.update(),
            gr.update(),
        )  # sources, two downloads, active filter: kept until a search is done
        if not message or not message.strip():
            history.append({"role": "assistant", "content": EMPTY_PROMPT})
            yield "", history, conversation, *side
            return
        history.append({"role": "user", "content": message})
        try:
            where = Filter.of(dict(zip(FILTER_FIELDS, (_filter_value(v) for v in filter_values))))
            events = conversation.ask_stream(message, int(k), mode, where=where)
            found = next(events).answer
            side = (
                sources_panel(found.hits),
                *downloads.write(request.session_hash, found.hits),
                filter_row(found.where),
            )
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
                    side = (sources_panel(event.answer.hits, event.answer.evidence), *side[1:])
                yield "", history, conversation, *side
        except PaperchatError as exc:
            reply = {"role": "assistant", "content": f"⚠️ {escape_markdown(str(exc))}"}
            history[-1:] = [history[-1], reply] if history[-1]["role"] == "user" else [reply]
            yield "", history, conversation, *side

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
                with gr.Row():
                    k = gr.Slider(1, 20, value=5, step=1, label="results")
                    mode = gr.Radio(list(MODES), value="hybrid", label="mode")
                with gr.Row():
                    active = gr.Markdown(filter_row(None), elem_id="active-filter")
                    reset = gr.Button("Clear filters", elem_id="clear-filters", size="sm")
                with gr.Accordion("Filters (kept for the whole chat)", open=False, elem_id="filters"):
                    with gr.Row():
                        since = gr.Textbox(label="since", placeholder="2024 or 2024-06-01", elem_id="filter-since")
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
                    bibtex = gr.DownloadButton("Download sources (BibTeX)", value=None, elem_id="download-bibtex")
                    ris = gr.DownloadButton("Download sources (RIS)", value=None, elem_id="download-ris")
        downloads = Downloads(bibtex.GRADIO_CACHE)

        def session_ended(request: gr.Request) -> None:
            downloads.end(request.session_hash)

        def new_chat(request: gr.Request):
            downloads.end(request.session_hash)
            return [], None, sources_panel([]), None, None, filter_row(None)

        def clear_filters(conversation: Conversation | None):
            """The one-click removal: the filter boxes and the filter the chat asked for."""
            if conversation is not None:
                conversation.clear_filter()
            return "", "", "", "", "", "", False, conversation, filter_row(None)

        filter_inputs = [since, until, author, category, venue, source, has_code]
        inputs, outputs = (
            [question, chatbot, conversation, k, mode, *filter_inputs],
            [question, chatbot, conversation, sources, bibtex, ris, active],
        )
        question.submit(respond, inputs, outputs, api_visibility="private")
        send.click(respond, inputs, outputs, api_visibility="private")
        clear.click(new_chat, None, [chatbot, conversation, sources, bibtex, ris, active], api_visibility="private")
        reset.click(clear_filters, conversation, [*filter_inputs, conversation, active], api_visibility="private")
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
