"""Misbehaving OpenAI-compatible endpoints for the fallback tests: real HTTP servers on loopback that
fail the ways a remote model does (hang, refuse the key, send garbage, say nothing, die mid-stream,
list models of another shape, keep the connection alive forever) or answer in another shape some
servers use (content as a list of parts). The well-behaved endpoint in the tests is a real llama.cpp
server with a real model (test_llm_server.py)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEEP_ALIVE_SECONDS = 0.2  # how often "keep-alive" sends a comment (or a space) while never answering


def event(content: str | list) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": content}}]}).encode() + b"\n\n"


def parts(text: str) -> list[dict]:
    """`text` as a list of content parts, the shape some servers send instead of a string."""
    return [{"type": "text", "text": text}]


class Endpoint:
    """A server whose /v1/chat/completions reply is `behaviour`; it records every request's headers and body."""

    def __init__(self, behaviour: str, pieces: tuple[str, ...] = ("LoRA trains low-rank ", "matrices [1]. ")) -> None:
        self.behaviour = behaviour
        self.pieces = pieces
        self.requests: list[tuple[str, dict, dict]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                endpoint.requests.append((self.path, dict(self.headers), {}))
                listed = 5 if endpoint.behaviour == "models-malformed" else [{"id": "test-model"}]
                self._send(200, json.dumps({"data": listed}).encode(), "application/json")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                endpoint.requests.append((self.path, dict(self.headers), body))
                endpoint.reply(self, body)

            def _send(self, status: int, payload: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.closed = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        if self.behaviour == "hang":
            time.sleep(30)
            return
        if self.behaviour == "unauthorized":
            handler._send(401, b'{"error": "invalid api key"}', "application/json")
            return
        if self.behaviour == "keep-alive":
            self.keep_alive(handler, b": ping\n\n" if body.get("stream") else b" ")
            return
        if not body.get("stream"):
            text = "" if self.behaviour == "empty" else "".join(self.pieces)
            content = parts(text) if self.behaviour == "parts" else text
            handler._send(
                200,
                json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode(),
                "application/json",
            )
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        if self.behaviour == "garbage":
            handler.wfile.write(b"data: {not json\n\n")
        elif self.behaviour == "empty":
            handler.wfile.write(b"data: [DONE]\n\n")
        elif self.behaviour == "dies":  # two pieces, then the connection is cut without [DONE]
            for piece in self.pieces:
                handler.wfile.write(event(piece))
                handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)
        else:
            for piece in self.pieces:
                handler.wfile.write(event(parts(piece) if self.behaviour == "parts" else piece))
                handler.wfile.flush()
            handler.wfile.write(b"data: [DONE]\n\n")
        handler.close_connection = True

    def keep_alive(self, handler: BaseHTTPRequestHandler, filler: bytes) -> None:
        """A 200 reply that never ends: `filler` (an SSE comment, or whitespace before a JSON body that never
        comes) every KEEP_ALIVE_SECONDS until the client goes away or the endpoint is closed."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream" if filler.startswith(b":") else "application/json")
        handler.end_headers()
        while not self.closed.wait(KEEP_ALIVE_SECONDS):
            try:
                handler.wfile.write(filler)
                handler.wfile.flush()
            except OSError:
                return
        handler.close_connection = True

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


def refused_url() -> str:
    """A loopback url nothing listens on."""
    from paperchat.eval.bench import free_port

    return f"http://127.0.0.1:{free_port()}/v1"


def with_llm(assistant, url: str, **settings):
    """Another Assistant over the same store (a real index), with an LLM endpoint configured."""
    from paperchat import Assistant, Settings

    return Assistant(Settings.load(index=assistant.settings.index, llm_url=url, **settings), assistant.store)
