"""Written answers from any OpenAI-compatible chat endpoint: Ollama, a llama.cpp or vLLM server, a hosted API.

The prompts are pure functions (`answer_messages`, `rewrite_messages`); `LLM` is the one place
that talks to the endpoint. Nothing here runs unless `llm_url` is set, and every way the
endpoint can fail (refused, timed out, an HTTP error, malformed or empty output, a stream cut
off) is an `LLMError` with a one-line reason, which the caller turns into the extractive answer.
The API key goes in the Authorization header to `llm_url` only (redirects are not followed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx

from paperchat.hits import Hit
from paperchat.index.errors import PaperchatError

ANSWER_INSTRUCTIONS = (
    "You answer questions about research papers using only the numbered paper abstracts you are given. "
    "Write a short answer of two to five sentences. End every sentence with the number of the abstract it rests on, "
    "in square brackets, like [1] or [2][3]. Cite only the numbers you were given. "
    "If the abstracts do not answer the question, say so in one sentence."
)
REWRITE_INSTRUCTIONS = (
    "Rewrite the user's last message as one stand-alone search query, using the earlier messages only to resolve "
    "what it refers to. Reply with the query alone, on one line."
)
MAX_REWRITE_WORDS = 30


class LLMError(PaperchatError):
    """The endpoint did not give a usable reply; the message says why in one line."""


def answer_messages(question: str, history: Sequence[str], sources: Sequence[Hit], abstract_chars: int) -> list[dict]:
    """The chat messages asking for a cited answer: instructions, then the conversation, the numbered abstracts and the question."""
    numbered = "\n\n".join(f"[{n}] {hit.title}\n{_clip(hit.abstract, abstract_chars)}" for n, hit in enumerate(sources, start=1))
    earlier = "".join(f"- {turn}\n" for turn in history)
    text = (f"Earlier questions in this conversation:\n{earlier}\n" if earlier else "") + f"Abstracts:\n\n{numbered}\n\nQuestion: {question}"
    return [{"role": "system", "content": ANSWER_INSTRUCTIONS}, {"role": "user", "content": text}]


def rewrite_messages(message: str, history: Sequence[str]) -> list[dict]:
    """The chat messages asking for a follow-up rewritten as a stand-alone query."""
    earlier = "".join(f"- {turn}\n" for turn in history)
    return [{"role": "system", "content": REWRITE_INSTRUCTIONS},
            {"role": "user", "content": f"Earlier messages:\n{earlier}\nLast message: {message}\n\nStand-alone query:"}]


def clean_rewrite(reply: str) -> str | None:
    """The query in a rewrite reply (its first line, without quotes or a 'Query:' label); None when it is unusable."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return None
    query = re.sub(r"^(?:stand-alone\s+)?(?:search\s+)?query\s*:\s*", "", lines[0], flags=re.I).strip().strip("\"'`*").strip()
    words = query.split()
    return query if 0 < len(words) <= MAX_REWRITE_WORDS else None


def _clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a sentence or word end."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind(" "))
    return (cut[: end + 1] if end > limit // 2 else cut).rstrip() + " …"


class LLM:
    """One OpenAI-compatible chat endpoint."""

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None, timeout: float = 60.0, max_tokens: int = 512) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), follow_redirects=False)

    def describe(self) -> str:
        return f"{self.model or 'the server default model'} at {self.url}"

    def _model(self) -> str:
        """The configured model, else the first one the endpoint lists (llama.cpp serves one; Ollama needs a name)."""
        if self.model:
            return self.model
        listed = self._json(self._request("GET", "/models")).get("data") or []
        names = [entry.get("id") for entry in listed if isinstance(entry, dict) and entry.get("id")]
        if not names:
            raise LLMError(f"{self.url} lists no models; set llm_model (--llm-model)")
        self.model = str(names[0])
        return self.model

    def complete(self, messages: list[dict], max_tokens: int | None = None) -> str:
        """The whole reply at once (used for short replies such as query rewrites)."""
        body = {"model": self._model(), "messages": messages, "max_tokens": max_tokens or self.max_tokens, "temperature": 0, "stream": False}
        reply = self._json(self._request("POST", "/chat/completions", body))
        try:
            text = reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"malformed reply from {self.url} (no choices[0].message.content)") from None
        if not text.strip():
            raise LLMError("the model returned an empty reply")
        return text

    def stream(self, messages: list[dict]) -> Iterator[str]:
        """The reply as it is generated, piece by piece; an `LLMError` ends it when the endpoint fails."""
        body = {"model": self._model(), "messages": messages, "max_tokens": self.max_tokens, "temperature": 0, "stream": True}
        produced = finished = False
        with self._failures(f"the connection to {self.url} failed mid-answer"), \
                self._client.stream("POST", self.url + "/chat/completions", json=body) as response:
            _check_status(response, self.url)
            for line in response.iter_lines():
                piece, done = _sse_event(line)
                finished = finished or done
                if piece:
                    produced = True
                    yield piece
                if finished and line.strip() == "data: [DONE]":
                    break
        if not produced:
            raise LLMError("the model returned an empty answer")
        if not finished:
            raise LLMError(f"the stream from {self.url} ended mid-answer")

    @contextmanager
    def _failures(self, failed: str) -> Iterator[None]:
        """httpx's errors as one-line `LLMError`s: a timeout, or `failed` and the reason."""
        try:
            yield
        except httpx.TimeoutException:
            raise LLMError(f"no reply from {self.url} within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise LLMError(f"{failed} ({_reason(exc)})") from None

    def _request(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        with self._failures(f"cannot reach {self.url}"):
            response = self._client.request(method, self.url + path, json=body)
            response.read()
        _check_status(response, self.url)
        return response

    def _json(self, response: httpx.Response) -> dict:
        try:
            found = response.json()
        except ValueError:
            raise LLMError(f"malformed reply from {self.url} (not JSON)") from None
        if not isinstance(found, dict):
            raise LLMError(f"malformed reply from {self.url} (not a JSON object)")
        return found


def _sse_event(line: str) -> tuple[str, bool]:
    """(text, finished) of one server-sent-events line: finished at `[DONE]` or a choice's finish_reason."""
    if not line.startswith("data:"):
        return "", False
    data = line[5:].strip()
    if data == "[DONE]":
        return "", True
    try:
        event = json.loads(data)
        choice = event["choices"][0] if event.get("choices") else {}
        delta = choice.get("delta") or {}
        text = str(delta.get("content") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise LLMError(f"malformed stream event: {data[:80]!r}") from None
    if event.get("error"):
        raise LLMError(f"the endpoint reported an error mid-answer: {' '.join(str(event['error']).split())[:120]}")
    return text, bool(choice.get("finish_reason"))


def _check_status(response: httpx.Response, url: str) -> None:
    if response.status_code == 200:
        return
    try:
        detail = response.read().decode("utf-8", "replace")
    except httpx.HTTPError:
        detail = ""
    hint = " (check llm_api_key / PAPERCHAT_LLM_API_KEY)" if response.status_code in (401, 403) else ""
    hint = hint or (" (check llm_model / --llm-model)" if response.status_code == 404 else "")
    raise LLMError(f"{url} answered HTTP {response.status_code}{hint}: {' '.join(detail.split())[:160]}")


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__
