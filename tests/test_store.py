"""The store on a real embedded Chroma with the real packaged model: idempotence, updates, BM25 staleness."""

import json

import pytest
from conftest import write

from assistant import Assistant, PaperchatError
from index.lexical import POINTER

PAPERS = [
    {"id": "lora", "title": "LoRA: Low-Rank Adaptation", "abstract": "We freeze the weights and train low-rank matrices for efficient fine-tuning."},
    {"id": "prune", "title": "Pruning Networks", "abstract": "Magnitude pruning removes small weights from convolutional networks."},
    {"id": "diff", "title": "Diffusion for Images", "abstract": "A denoising diffusion model generates high-resolution images."},
]


@pytest.fixture
def small(tmp_path, embedder):
    corpus = write(tmp_path / "papers.jsonl", "\n".join(json.dumps(p) for p in PAPERS) + "\n")
    assistant = Assistant.open(tmp_path / "index", bootstrap=False, load_model=False, progress=False, notify=lambda m: None)
    assistant.store.embedder = embedder
    assistant.ingest([corpus], progress=False)
    return assistant, corpus, tmp_path


def test_ingest_twice_changes_nothing(small):
    assistant, corpus, _ = small
    load_report, report = assistant.ingest([corpus], progress=False)
    assert (report.added, report.updated, report.unchanged, report.total) == (0, 0, 3, 3)
    assert assistant.store.count() == len(assistant.store.lexical()) == 3


def test_changed_abstract_updates_chroma_and_bm25_together(small):
    assistant, corpus, tmp_path = small
    changed = [dict(p) for p in PAPERS]
    changed[2]["abstract"] = "Autoregressive transformers synthesise audio waveforms."
    _, report = assistant.ingest([write(tmp_path / "v2.jsonl", "\n".join(json.dumps(p) for p in changed))], progress=False)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 2)
    assert assistant.search("audio waveforms", k=1, mode="bm25")[0].id == "diff"
    assert assistant.search("denoising", k=3, mode="bm25") == []


def test_remove_deletes_from_both_sides(small):
    assistant, _, _ = small
    assert assistant.remove(["prune", "missing"]) == ["prune"]
    assert assistant.store.count() == 2
    assert [h.id for h in assistant.search("pruning weights", k=3, mode="bm25")] == ["lora"]
    assert "prune" not in assistant.store.lexical().ids


def test_stale_bm25_index_is_rebuilt_on_open(small, embedder):
    assistant, _, tmp_path = small
    folder = assistant.store.lexical_folder
    pointer = json.loads((folder / POINTER).read_text())
    pointer["fingerprint"] = "something-older"
    (folder / POINTER).write_text(json.dumps(pointer))
    messages = []
    reopened = Assistant.open(tmp_path / "index", bootstrap=False, load_model=False, notify=messages.append)
    assert any("stale" in m for m in messages)
    assert len(reopened.store.lexical()) == 3
    assert json.loads((folder / POINTER).read_text())["fingerprint"] == reopened.store.fingerprint()


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "delete"])
def test_damaged_bm25_files_are_detected_and_rebuilt(small, damage):
    assistant, _, tmp_path = small
    folder = assistant.store.lexical_folder
    build = folder / json.loads((folder / POINTER).read_text())["build"]
    target = build / "data.csc.index.npy"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:20])
    elif damage == "corrupt":
        data = bytearray(target.read_bytes())
        data[-1] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    messages = []
    reopened = Assistant.open(tmp_path / "index", bootstrap=False, load_model=False, notify=messages.append)
    assert messages and "rebuilding" in messages[0]
    assert reopened.search("low-rank fine-tuning", k=1, mode="bm25")[0].id == "lora"


def test_opening_an_index_with_another_model_is_a_clear_error(small):
    _, _, tmp_path = small
    with pytest.raises(PaperchatError, match="built with the model 'all-MiniLM-L6-v2'"):
        Assistant.open(tmp_path / "index", model="some/other-model", bootstrap=False, load_model=False)


def test_empty_index_bootstraps_the_bundled_corpus(bundled_index):
    info = Assistant.open(bundled_index, load_model=False).info()
    assert info["documents"] == 380 and info["model"] == "all-MiniLM-L6-v2" and info["engine"] == "bm25s"


def test_rank_bm25_engine_through_the_same_tokenizer(small, embedder):
    _, _, tmp_path = small
    other = Assistant.open(tmp_path / "index", engine="rank-bm25", bootstrap=False, load_model=False, notify=lambda m: None)
    other.store.embedder = embedder
    assert other.search("LoRA", k=1, mode="bm25")[0].id == "lora"
    assert other.search("lora", k=1)[0].id == "lora"


LONG = {
    "id": "long",
    "title": "Expert Routing in Sparse Mixture Models",
    "abstract": " ".join(f"Experiment {i} shows how expert routing interacts with the learning rate schedule in sparse models." for i in range(20))
    + " Finally, we release a corpus of Icelandic sheep herding dialogues.",
}


def test_long_abstracts_get_passages_the_vector_side_reads(small):
    assistant, _, tmp_path = small
    store = assistant.store
    assistant.ingest([write(tmp_path / "long.jsonl", json.dumps(LONG) + "\n")], progress=False)
    stored = store.passage_collection().get(where={"doc": "long"}, include=["documents"])
    assert store.collection().get(ids=["long"])["metadatas"][0]["passages"] == len(stored["ids"]) >= 2
    assert store.passage_collection().get(where={"doc": "lora"})["ids"] == []  # short abstracts need none
    query = "Icelandic sheep herding dialogues"
    own = float(store.vectors(["long"])["long"] @ store.embedder.encode_query(query))
    hit = assistant.search(query, k=1, mode="vector")[0]
    assert hit.id == "long" and hit.vector > own + 0.1  # the ending, past the model's window, was read

    assistant.ingest([write(tmp_path / "short.jsonl", json.dumps({**LONG, "abstract": "Routing experts."}) + "\n")], progress=False)
    assert store.passage_collection().get(where={"doc": "long"})["ids"] == []
    assistant.ingest([write(tmp_path / "long.jsonl", json.dumps(LONG) + "\n")], progress=False)
    assert assistant.remove(["long"]) == ["long"]
    assert store.passage_collection().count() == 0
    assert store.lexical().passages.offsets.tolist() == [0, 0, 0, 0]
