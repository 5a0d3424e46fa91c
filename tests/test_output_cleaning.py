"""Terminal output is text, whatever the corpus or the LLM endpoint sends: ANSI escapes, BEL, C1 and bidi
controls in titles, abstracts, authors and endpoint error messages never reach the terminal raw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import small_assistant
from paperchat.cli import json_text, terminal_text

# Recolour, retitle the window (OSC ... BEL), C1 CSI, backspace over text, carriage return, right-to-left override.
CONTROLS = ("\x1b[31m", "\x1b]0;pwned\x07", "\x9b2J", "\x08\x08", "\r", "\u202e")
HOSTILE = "".join(CONTROLS)
RAW = ("\x1b", "\x07", "\x9b", "\x08", "\r", "\u202e")


def shows_no_controls(text: str) -> bool:
    return not any(control in text for control in RAW)


def test_terminal_text_turns_each_control_into_a_space_and_keeps_line_ends_and_tabs():
    assert terminal_text("a\x1b[31mb\x07c\x9bd\re\u202ef\x00g\n\th") == "a [31mb c d e f g\n\th"


def test_json_output_escapes_controls_and_reads_back_unchanged():
    payload = {"title": f"Sparse {HOSTILE}attention", "authors": ["Ana \x9b\u202eAlves"]}
    text = json_text(payload, indent=2)
    assert shows_no_controls(text) and json.loads(text) == payload


@pytest.fixture(scope="module")
def hostile_index(tmp_path_factory, embedder):

    folder = tmp_path_factory.mktemp("hostile-output")
    record = {
        "id": "hostile",
        "title": f"Prompt injection {HOSTILE}in retrieval assistants",
        "authors": [f"Eve {HOSTILE}Mallory"],
        "venue": f"ACL {HOSTILE}",
        "abstract": f"We study prompt injection against retrieval assistants {HOSTILE}. "
        f"Prompt injection hides instructions {HOSTILE}in data.",
    }
    corpus = folder / "hostile.jsonl"
    corpus.write_text(
        json.dumps(record)
        + "\n"
        + json.dumps({"id": "plain", "title": "Plain paper", "abstract": "About graph rewiring."})
        + "\n"
    )
    small_assistant(folder / "index", embedder, corpus)
    return folder / "index"


def paperchat(index, *argv: str) -> subprocess.CompletedProcess:
    """The console command in a subprocess, as a user runs it; the gate is off so that the hostile paper is shown."""
    environment = {**os.environ, "PAPERCHAT_MIN_RELEVANCE": "0"}
    return subprocess.run(
        [sys.executable, "-m", "paperchat.cli", *argv, "--index", str(index)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "prompt injection", "--no-gate"],
        ["search", "prompt injection", "--no-gate", "--format", "ris"],
        ["ask", "how does prompt injection work?"],
    ],
)
def test_corpus_text_reaches_the_terminal_without_controls(hostile_index, argv):
    result = paperchat(hostile_index, *argv)
    assert result.returncode == 0, result.stderr
    assert "Prompt injection" in result.stdout and "Mallory" in result.stdout
    assert shows_no_controls(result.stdout + result.stderr), repr(result.stdout)


def test_search_json_keeps_the_text_and_escapes_the_controls(hostile_index):
    result = paperchat(hostile_index, "search", "prompt injection", "--no-gate", "--json")
    assert result.returncode == 0 and shows_no_controls(result.stdout)
    titles = [hit["title"] for hit in json.loads(result.stdout)["hits"]]
    assert f"Prompt injection {HOSTILE}in retrieval assistants" in titles


class FailingEndpoint:
    """An OpenAI-compatible endpoint on loopback answering every request HTTP 500, with control characters
    in its error text."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._fail()

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._fail()

            def _fail(self):
                body = json.dumps({"error": f"model overloaded {HOSTILE}retry later"}, ensure_ascii=False).encode()
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_endpoint_error_with_controls_reaches_the_terminal_cleaned(hostile_index):
    endpoint = FailingEndpoint()
    try:
        result = paperchat(
            hostile_index, "ask", "how does prompt injection work?", "--llm-url", endpoint.url, "--llm-model", "m"
        )
    finally:
        endpoint.close()
    assert result.returncode == 0, result.stderr
    assert "HTTP 500" in result.stderr and "model overloaded" in result.stderr and "retry later" in result.stderr
    assert shows_no_controls(result.stdout + result.stderr), repr(result.stderr)
