"""Misbehaving OpenAI-compatible endpoints for the fallback tests: real HTTP servers on loopback that
fail the ways a remote model does (hang, refuse the key, send garbage, say nothing, die mid-stream).
The well-behaved endpoint in the tests is a real llama.cpp server with a real model (test_llm_server.py)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def event(text: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode() + b"\n\n"


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
                self._send(200, json.dumps({"data": [{"id": "test-model"}]}).encode(), "application/json")

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
        if not body.get("stream"):
            content = "" if self.behaviour == "empty" else "".join(self.pieces)
            handler._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode(), "application/json")
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
                handler.wfile.write(event(piece))
                handler.wfile.flush()
            handler.wfile.write(b"data: [DONE]\n\n")
        handler.close_connection = True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def refused_url() -> str:
    """A loopback url nothing listens on."""
    from test_ui import free_port

    return f"http://127.0.0.1:{free_port()}/v1"
