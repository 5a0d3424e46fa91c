"""Shared fixtures: one real index of the bundled corpus (real model, real embedded Chroma) per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "index" / "corpus"


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

    return Embedder()


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


sys.path.insert(0, str(Path(__file__).parent))
