"""The embedding model: single queries go through ONNX Runtime and must give torch's vectors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paperchat.index.embeddings import Embedder, OnnxQueryEncoder, torch_forward
from paperchat.index.errors import PaperchatError
from paperchat.settings import Settings

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


@pytest.mark.slow
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


TORCH_FREE_PROBE = """
import json, sys
from pathlib import Path
from paperchat.index.embeddings import Embedder
embedder = Embedder(cache_dir=Path(sys.argv[1]))
vector = embedder.encode_query(sys.argv[2])
print(json.dumps({"torch_imported": "torch" in sys.modules, "backend": embedder.active_query_backend, \
"vector": vector.tolist()}))
"""


def _embed_in_fresh_process(cache: Path, text: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FREE_PROBE, str(cache), text],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_later_processes_embed_queries_without_importing_torch(tmp_path):
    first = Embedder(cache_dir=tmp_path)
    assert first.active_query_backend == "onnxruntime"  # exports, checks, and leaves the torch-free record
    assert list((tmp_path / "onnx").glob("folder-*.json"))

    result = _embed_in_fresh_process(tmp_path, TEXTS[1])
    assert result["backend"] == "onnxruntime" and not result["torch_imported"]
    assert float(np.asarray(result["vector"]) @ torch_forward(first.model, TEXTS[1])) > 0.9999

    (record,) = (tmp_path / "onnx").glob("folder-*.json")
    record.write_text("{damaged", encoding="utf-8")
    fallback = _embed_in_fresh_process(tmp_path, TEXTS[0])  # the full path takes over and still gives torch's vector
    assert fallback["torch_imported"] and fallback["backend"] == "onnxruntime"
    assert float(np.asarray(fallback["vector"]) @ torch_forward(first.model, TEXTS[0])) > 0.9999
    assert not _embed_in_fresh_process(tmp_path, TEXTS[0])["torch_imported"]  # the fallback rewrote the record


@pytest.mark.slow
def test_a_failing_onnx_query_path_is_a_warning_visible_by_default(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("the cache cannot live here")
    script = (
        "import sys; from pathlib import Path; from paperchat.index.embeddings import Embedder; "
        "print(Embedder(cache_dir=Path(sys.argv[1])).active_query_backend)"
    )
    result = subprocess.run([sys.executable, "-c", script, str(blocker)], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "torch"
    assert "ONNX export or load failed" in result.stderr and "query embedding stays on torch" in result.stderr


def test_a_local_model_folder_that_does_not_load_is_its_own_error_not_a_hub_lookup(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(PaperchatError, match=f"cannot load the embedding model folder {folder}"):
        Embedder(str(folder), cache_dir=tmp_path).encode(["a"])


SEARCH_PROBE = """
import json, sys
from paperchat import Assistant
assistant = Assistant.open(sys.argv[1], bootstrap=False, notify=lambda m: None)
asked = "pruning large language models"
found = [len(assistant.retrieve(asked, k=3, where=where).closest) for where in (None, {"since": "2050"})]
print(json.dumps({"found": found, "torch_imported": "torch" in sys.modules}))
"""


def test_a_process_that_only_searches_never_imports_torch_even_when_a_filter_matches_nothing(bundled_index):
    """An empty candidate pool once asked the model for its dimension, loading torch (seconds, ~400 MB)."""
    command = [sys.executable, "-c", SEARCH_PROBE, str(bundled_index)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"found": [3, 0], "torch_imported": False}


def test_an_ingest_can_embed_in_a_pool_of_processes_with_the_same_vectors(embedder, monkeypatch, tmp_path):
    """`embed_processes` (for a GPU, where tokenising is the bottleneck) splits a large batch of documents among copies
    of the model in other processes: the vectors are the same, a small batch (a page of new papers) does not start
    the pool, and the pool ends with `close`."""
    import multiprocessing

    from paperchat import Assistant

    monkeypatch.setenv("PAPERCHAT_EMBED_PROCESSES", "2")
    opened = Assistant.open(tmp_path / "index", bootstrap=False, load_model=False, notify=lambda message: None)
    assert opened.store.embedder.processes == 2
    pooled = Embedder(device="cpu", batch_size=8, cache_dir=embedder.cache_dir, processes=2)
    texts = [f"{TEXTS[0]}, variant {i}" for i in range(12)] + [TEXTS[2]] * 4 + [TEXTS[1]] * 4
    before = set(multiprocessing.active_children())
    np.testing.assert_allclose(pooled.encode(texts[:15]), embedder.encode(texts[:15]), atol=1e-5)
    assert set(multiprocessing.active_children()) == before  # under 2 x 8 texts: embedded here
    try:
        np.testing.assert_allclose(pooled.encode(texts), embedder.encode(texts), atol=1e-5)
        assert len(set(multiprocessing.active_children()) - before) == 2
        np.testing.assert_allclose(pooled.encode(texts[:3]), embedder.encode(texts[:3]), atol=1e-5)  # now pooled too
    finally:
        pooled.close()
    assert set(multiprocessing.active_children()) == before
