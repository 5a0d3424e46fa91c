"""Shared fixtures: one real index of the bundled corpus (real model, real embedded Chroma) per test session."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "index" / "corpus"
# A developer's own PAPERCHAT_* settings (a Chroma server, an index, a cache) must never reach the
# tests: they would search or delete papers there. The ONNX cache goes to a folder of this run.
for _name in [name for name in os.environ if name.startswith("PAPERCHAT_") and name != "PAPERCHAT_REQUIRE_BROWSER"]:
    del os.environ[_name]
TEST_CACHE = Path(tempfile.mkdtemp(prefix="paperchat-test-cache-"))
os.environ["PAPERCHAT_CACHE_DIR"] = str(TEST_CACHE)


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch):
    """Every test starts from the defaults: no PAPERCHAT_* variable but the run's own cache folder."""
    for name in [
        name
        for name in os.environ
        if name.startswith("PAPERCHAT_") and name not in ("PAPERCHAT_CACHE_DIR", "PAPERCHAT_REQUIRE_BROWSER")
    ]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PAPERCHAT_CACHE_DIR", str(TEST_CACHE))


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory) -> Path:
    """An index folder holding the bundled corpus, built once through the public API."""
    from paperchat import Assistant

    path = tmp_path_factory.mktemp("bundled-index")
    Assistant.open(path, progress=False, notify=lambda message: None)
    return path


@pytest.fixture(scope="session")
def assistant(bundled_index):
    from paperchat import Assistant

    return Assistant.open(bundled_index, progress=False, notify=lambda message: None)


@pytest.fixture(scope="session")
def embedder():
    """The real packaged model, shared by tests that build small indexes of their own."""
    from paperchat.index.embeddings import Embedder

    return Embedder(cache_dir=TEST_CACHE)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


sys.path.insert(0, str(Path(__file__).parent))


# Tests that need the real model, a built index, a server or a browser are the slow lane
# (`python -m pytest -m "not slow"` skips them); everything else runs in seconds.
SLOW_FIXTURES = {
    "bundled_index",
    "assistant",
    "embedder",
    "chroma_server",
    "served",
    "launched",
    "server",
    "client",
    "small",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def small_assistant(index: Path, embedder, corpus: Path | None = None, **settings):
    """An index of a test's own (no bundled corpus) that embeds with the session's loaded model,
    holding `corpus` when one is given; `settings` go to `Assistant.open`."""
    from paperchat import Assistant

    assistant = Assistant.open(index, bootstrap=False, load_model=False, notify=lambda message: None, **settings)
    assistant.store.embedder = embedder
    if corpus is not None:
        assistant.ingest([corpus], progress=False)
    return assistant
