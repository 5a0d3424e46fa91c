"""The embedding model: single queries go through ONNX Runtime and must give torch's vectors."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.settings import Settings
from index.embeddings import Embedder, OnnxQueryEncoder, torch_forward
from index.errors import PaperchatError

TEXTS = [
    "graph neural networks for molecule property prediction",
    "¿Qué es un transformer? 日本語のクエリ 🚀 GPT-4o vs Llama-3.1",
    " ".join(["a query far longer than the model's 256-token window"] * 60),
]


@pytest.mark.parametrize("text", TEXTS)
def test_queries_embed_through_onnx_runtime_with_torchs_vectors(embedder, text):
    assert embedder.active_query_backend == "onnxruntime"
    vector = embedder.encode_query(text)
    reference = torch_forward(embedder.model, text)
    assert vector.dtype == np.float32 and vector.shape == reference.shape
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert float(vector @ reference) > 0.9999


def test_the_export_is_cached_and_a_damaged_copy_is_exported_again(embedder, tmp_path):
    assert OnnxQueryEncoder.create(embedder.model, tmp_path) is not None
    (exported,) = (tmp_path / "onnx").glob("*.onnx")
    written = exported.stat().st_mtime_ns
    assert OnnxQueryEncoder.create(embedder.model, tmp_path) is not None
    assert exported.stat().st_mtime_ns == written  # reused, not exported again

    exported.write_bytes(b"not an onnx model")
    encoder = OnnxQueryEncoder.create(embedder.model, tmp_path)
    assert encoder is not None and exported.stat().st_size > 1_000_000
    raw = encoder.encode(TEXTS[0])
    assert float(raw @ torch_forward(embedder.model, TEXTS[0])) / float(np.linalg.norm(raw)) > 0.9999


def test_torch_query_backend_is_honoured(tmp_path):
    embedder = Embedder(query_backend="torch", cache_dir=tmp_path)
    vector = embedder.encode_query(TEXTS[0])
    assert embedder.active_query_backend == "torch"
    assert not (tmp_path / "onnx").exists()
    assert np.allclose(vector, torch_forward(embedder.model, TEXTS[0]))


def test_unknown_query_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PAPERCHAT_QUERY_BACKEND", "tensorrt")
    with pytest.raises(PaperchatError, match="query_backend"):
        Settings.load()
    with pytest.raises(PaperchatError, match="query_backend"):
        Embedder(query_backend="tensorrt")
