"""The Gradio web chat: layout and event wiring over `paperchat.Assistant`; no retrieval logic here."""

from __future__ import annotations

import json

import gradio as gr

from paperchat import Assistant, PaperchatError
from paperchat.settings import MODES
from paperchat.ui.render import CSS, escape_markdown, reply_markdown, sources_panel

EXAMPLES = [
    "Is there a training-free way to detect LLM-generated text?",
    "pruning large language models",
    "What about for vision transformers?",
    "knowledge distillation for code models",
    "more like [1]",
]
EMPTY_PROMPT = "Ask me about the papers: a research question, a method name such as LoRA, or a topic like 'machine unlearning'."


def _text(content) -> str:
    """Message content as plain text: Gradio gives a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, (list, tuple)):
        return " ".join(_text(part) for part in content).strip()
    return ""


def _user_messages(history: list[dict]) -> list[str]:
    return [_text(m.get("content")) for m in history or [] if isinstance(m, dict) and m.get("role") == "user"]


def build_app(assistant: Assistant) -> gr.Blocks:
    """The chat page plus two named API endpoints: `/search` (hits as JSON) and `/chat` (a cited answer as JSON)."""

    def respond(message: str, history: list[dict], k: int, mode: str):
        history = list(history or [])
        if not message or not message.strip():
            history.append({"role": "assistant", "content": EMPTY_PROMPT})
            return "", history, gr.update()
        try:
            answer = assistant.ask(message, _user_messages(history), int(k), mode)
            reply, panel = reply_markdown(answer), sources_panel(answer.hits)
        except PaperchatError as exc:
            reply, panel = f"⚠️ {escape_markdown(str(exc))}", gr.update()
        history += [{"role": "user", "content": message}, {"role": "assistant", "content": reply}]
        return "", history, panel

    def search_api(query: str, k: int = 10, mode: str = "hybrid") -> dict:
        """Ranked hits for a query: {query, mode, took_ms, relevant, relevance, hits: [Hit...]}; no hits when nothing is relevant."""
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
        gr.Markdown(f"## paperchat\nCited answers from {assistant.info()['documents']} paper abstracts · hybrid BM25 + vector search, no LLM needed.")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Chat", height=520, elem_id="chat")
                question = gr.Textbox(placeholder="Ask about the papers…", show_label=False, elem_id="question", autofocus=True)
                with gr.Row():
                    send = gr.Button("Ask", variant="primary", elem_id="ask")
                    clear = gr.Button("New chat")
                with gr.Row():
                    k = gr.Slider(1, 20, value=5, step=1, label="results")
                    mode = gr.Radio(list(MODES), value="hybrid", label="mode")
                gr.Examples(EXAMPLES, inputs=question, label="Examples (click, then Ask)")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_panel([]), elem_id="sources")
        question.submit(respond, [question, chatbot, k, mode], [question, chatbot, sources], api_visibility="private")
        send.click(respond, [question, chatbot, k, mode], [question, chatbot, sources], api_visibility="private")
        clear.click(lambda: ([], sources_panel([])), None, [chatbot, sources], api_visibility="private")
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
            raise PaperchatError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); choose another with --port") from None


def launch(assistant: Assistant, host: str = "127.0.0.1", port: int = 7860, share: bool = False, auth: str | None = None, block: bool = True):
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
        blocked_paths=[str(assistant.settings.index), str(assistant.settings.cache_dir)],  # never served, whatever Gradio allows by default
        server_name=host,
        server_port=port,
        share=share,
        auth=credentials,
        show_error=False,
        prevent_thread_lock=not block,
        quiet=not block,
        css=CSS,
    )
    return app
