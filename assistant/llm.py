"""Written answers from any OpenAI-compatible chat endpoint: Ollama, a llama.cpp or vLLM server, a hosted API.

The prompts are pure functions (`answer_messages`, `rewrite_messages`); `LLM` is the one place
that talks to the endpoint. Nothing here runs unless `llm_url` is set, and every way the
endpoint can fail (refused, timed out, an HTTP error, a reply of an unexpected shape, empty
output, a stream cut off, a stream that never ends) is an `LLMError` with a one-line reason,
which the caller turns into the extractive answer. Each call has an overall deadline
(`llm_deadline`) besides the timeout between bytes, so keep-alive comments cannot hold it forever.
The API key goes in the Authorization header to `llm_url` only (redirects are not followed).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx

from paperchat.hits import Hit
from paperchat.index.errors import PaperchatError
from paperchat.settings import Settings

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
CELL_INSTRUCTIONS = (
    "You read the abstract of one research paper. For each aspect listed, say in one short sentence what the "
    "abstract states about it, using only the abstract. Reply with one line per aspect, as 'aspect: sentence'. "
    "When the abstract does not say, write 'aspect: not stated'."
)
MAX_REWRITE_WORDS = 30
LINE_BREAK = re.compile(r"\r\n|\r|\n")
DEFAULTS = Settings.model_fields  # the client's defaults are the settings' defaults, stated once there


class LLMError(PaperchatError):
    """The endpoint did not give a usable reply; the message says why in one line."""


def answer_messages(question: str, history: Sequence[str], sources: Sequence[Hit], abstract_chars: int) -> list[dict]:
    """The chat messages asking for a cited answer: the instructions, the conversation, the numbered
    abstracts and the question."""
    numbered = "\n\n".join(
        f"[{n}] {hit.title}\n{_clip(hit.abstract, abstract_chars)}" for n, hit in enumerate(sources, start=1)
    )
    earlier = "".join(f"- {turn}\n" for turn in history)
    conversation = f"Earlier questions in this conversation:\n{earlier}\n" if earlier else ""
    text = f"{conversation}Abstracts:\n\n{numbered}\n\nQuestion: {question}"
    return [{"role": "system", "content": ANSWER_INSTRUCTIONS}, {"role": "user", "content": text}]


def cell_messages(title: str, abstract: str, headings: Sequence[str], abstract_chars: int) -> list[dict]:
    """The chat messages asking a model to word one paper's comparison cells (`headings`: the aspects' names)."""
    asked = "\n".join(f"{heading}:" for heading in headings)
    text = f"Title: {title}\nAbstract: {_clip(abstract, abstract_chars)}\n\nAspects:\n{asked}"
    return [{"role": "system", "content": CELL_INSTRUCTIONS}, {"role": "user", "content": text}]


def rewrite_messages(message: str, history: Sequence[str]) -> list[dict]:
    """The chat messages asking for a follow-up rewritten as a stand-alone query."""
    earlier = "".join(f"- {turn}\n" for turn in history)
    return [
        {"role": "system", "content": REWRITE_INSTRUCTIONS},
        {"role": "user", "content": f"Earlier messages:\n{earlier}\nLast message: {message}\n\nStand-alone query:"},
    ]


def clean_rewrite(reply: str) -> str | None:
    """The query in a rewrite reply (its first line, without quotes or a 'Query:' label); None when it is unusable."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return None
    unlabelled = re.sub(r"^(?:stand-alone\s+)?(?:search\s+)?query\s*:\s*", "", lines[0], flags=re.I)
    query = unlabelled.strip().strip("\"'`*").strip()
    words = query.split()
    return query if 0 < len(words) <= MAX_REWRITE_WORDS else None


def content_text(content: object) -> str | None:
    """The text of a message's content: a string, or the text parts of a list of parts
    (`[{"type": "text", "text": ...}]`, which some servers send); None when it is neither."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list) or not all(isinstance(part, dict) for part in content):
        return None
    texts = [part.get("text") for part in content if part.get("type", "text") == "text"]
    return "".join(texts) if all(isinstance(text, str) for text in texts) else None


def _clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a sentence or word end."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind(" "))
    return (cut[: end + 1] if end > limit // 2 else cut).rstrip() + " …"


class LLM:
    """One OpenAI-compatible chat endpoint."""

    def __init__(
        self,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULTS["llm_timeout"].default,
        max_tokens: int = DEFAULTS["llm_max_tokens"].default,
        deadline: float = DEFAULTS["llm_deadline"].default,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.deadline = deadline
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LLM | None:
        """The endpoint `settings` configure, or None when `llm_url` is unset (then nothing connects anywhere)."""
        if not settings.llm_url:
            return None
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(
            settings.llm_url,
            settings.llm_model,
            key,
            settings.llm_timeout,
            settings.llm_max_tokens,
            settings.llm_deadline,
        )

    def describe(self) -> str:
        return f"{self.model or 'the server default model'} at {self.url}"

    def complete(self, messages: list[dict], max_tokens: int | None = None) -> str:
        """The whole reply at once (used for short replies such as query rewrites)."""
        ends = time.monotonic() + self.deadline
        body = {
            "model": self._model(ends),
            "messages": messages,
            "max_tokens": max_tokens or self.max_tokens,
            "temperature": 0,
            "stream": False,
        }
        reply = self._json(self._request("POST", "/chat/completions", ends, body))
        try:
            text = content_text(reply["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            text = None
        if text is None:
            raise LLMError(f"malformed reply from {self.url} (no text in choices[0].message.content)")
        if not text.strip():
            raise LLMError("the model returned an empty reply")
        return text

    def stream(self, messages: list[dict]) -> Iterator[str]:
        """The reply as it is generated, piece by piece; an `LLMError` ends it when the endpoint fails
        or the whole answer takes longer than the deadline."""
        ends = time.monotonic() + self.deadline
        body = {
            "model": self._model(ends),
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "stream": True,
        }
        produced = finished = False
        with (
            self._failures(f"the connection to {self.url} failed mid-answer", ends),
            self._client.stream(
                "POST", self.url + "/chat/completions", json=body, timeout=self._timeout(ends)
            ) as response,
        ):
            self._check_status(response, ends)
            for line in self._lines(response, ends):
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

    def _model(self, ends: float) -> str:
        """The configured model, else the first one the endpoint lists (llama.cpp serves one; Ollama needs a name)."""
        if self.model:
            return self.model
        listed = self._json(self._request("GET", "/models", ends)).get("data")
        if listed is not None and not isinstance(listed, list):
            raise LLMError(f"malformed reply from {self.url}/models ('data' is not a list)")
        names = [entry.get("id") for entry in listed or [] if isinstance(entry, dict) and entry.get("id")]
        if not names:
            raise LLMError(f"{self.url} lists no models; set llm_model (--llm-model)")
        self.model = str(names[0])
        return self.model

    def _timeout(self, ends: float) -> httpx.Timeout:
        """The wait allowed between bytes: the timeout, or what is left of the deadline when that is shorter."""
        wait = max(min(self.timeout, ends - time.monotonic()), 0.001)
        return httpx.Timeout(wait, connect=min(wait, 10.0))

    def _check_deadline(self, ends: float) -> None:
        if time.monotonic() >= ends:
            raise self._late()

    def _late(self) -> LLMError:
        return LLMError(f"no complete reply from {self.url} within {self.deadline:g} s (llm_deadline)")

    def _lines(self, response: httpx.Response, ends: float) -> Iterator[str]:
        """The lines of a streamed body, the deadline checked on every chunk (a trickle without line ends
        cannot outlast it either)."""
        pending = ""
        for chunk in response.iter_text():
            self._check_deadline(ends)
            *complete, pending = LINE_BREAK.split(pending + chunk)
            yield from complete
        if pending:
            yield pending

    def _body(self, response: httpx.Response, ends: float) -> bytes:
        """The whole body of a response, the deadline checked on every chunk."""
        chunks = []
        for chunk in response.iter_bytes():
            self._check_deadline(ends)
            chunks.append(chunk)
        return b"".join(chunks)

    @contextmanager
    def _failures(self, failed: str, ends: float) -> Iterator[None]:
        """httpx's errors as one-line `LLMError`s: a timeout (or the deadline passed), or `failed` and the reason."""
        try:
            yield
        except httpx.TimeoutException:
            if time.monotonic() >= ends:
                raise self._late() from None
            raise LLMError(f"no reply from {self.url} within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise LLMError(f"{failed} ({_reason(exc)})") from None

    def _request(self, method: str, path: str, ends: float, body: dict | None = None) -> bytes:
        """The body of a successful reply to one request."""
        with (
            self._failures(f"cannot reach {self.url}", ends),
            self._client.stream(method, self.url + path, json=body, timeout=self._timeout(ends)) as response,
        ):
            self._check_status(response, ends)
            return self._body(response, ends)

    def _json(self, content: bytes) -> dict:
        try:
            found = json.loads(content)
        except ValueError:
            raise LLMError(f"malformed reply from {self.url} (not JSON)") from None
        if not isinstance(found, dict):
            raise LLMError(f"malformed reply from {self.url} (not a JSON object)")
        return found

    def _check_status(self, response: httpx.Response, ends: float) -> None:
        if response.status_code == 200:
            return
        try:
            detail = self._body(response, ends).decode("utf-8", "replace")
        except (httpx.HTTPError, LLMError):
            detail = ""
        hint = " (check llm_api_key / PAPERCHAT_LLM_API_KEY)" if response.status_code in (401, 403) else ""
        hint = hint or (" (check llm_model / --llm-model)" if response.status_code == 404 else "")
        raise LLMError(f"{self.url} answered HTTP {response.status_code}{hint}: {' '.join(detail.split())[:160]}")


def _sse_event(line: str) -> tuple[str, bool]:
    """(text, finished) of one server-sent-events line: finished at `[DONE]` or a choice's finish_reason.
    Comments (`: ping`) and other fields carry no text."""
    if not line.startswith("data:"):
        return "", False
    data = line[5:].strip()
    if data == "[DONE]":
        return "", True
    try:
        event = json.loads(data)
        choice = event["choices"][0] if event.get("choices") else {}
        text = content_text((choice.get("delta") or {}).get("content"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        text = None
    if text is None:
        raise LLMError(f"malformed stream event: {data[:80]!r}")
    if event.get("error"):
        raise LLMError(f"the endpoint reported an error mid-answer: {' '.join(str(event['error']).split())[:120]}")
    return text, bool(choice.get("finish_reason"))


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__
