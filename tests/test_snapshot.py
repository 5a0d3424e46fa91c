"""BM25 (both engines, candidate-only term scoring, IDF) and the snapshot's save/load checks."""

import json

import numpy as np
import pytest

from paperchat.index import strings as strings_module
from paperchat.index.bm25 import BM25Index, BM25Params
from paperchat.index.passages import Passages
from paperchat.index.snapshot import FORMAT_VERSION, MANIFEST, SAMPLE_BLOCK, SAMPLE_BLOCKS, Snapshot, file_digest
from paperchat.index.strings import StringTable
from paperchat.index.tokenize import Tokenizer

TEXTS = [
    "pruning neural networks",
    "diffusion models for images",
    "LLM pruning with LoRA adapters",
    "LoRA for diffusion",
    "speech models",
]
IDS = [f"d{i}" for i in range(len(TEXTS))]


@pytest.mark.parametrize("engine", ["bm25s", "rank-bm25"])
def test_weighted_term_scores_on_candidates_equal_full_scores(engine):
    index = BM25Index.build(TEXTS, engine)
    positions = np.array([4, 0, 2, 3])
    weights = {"prune": 1.0, "lora": 0.5, "diffus": 0.25, "unknown": 2.0}
    for term, weight in weights.items():
        assert index.weighted_term_scores({term: weight}, positions) == pytest.approx(
            weight * index.scores([term])[positions]
        )
    assert index.weighted_term_scores(weights, positions) == pytest.approx(
        sum(weight * index.scores([term])[positions] for term, weight in weights.items())
    )


def test_search_returns_only_matching_documents_best_first():
    index = BM25Index.build(TEXTS)
    positions, scores = index.search(Tokenizer().tokens("LoRA pruning"), 10)
    assert [IDS[p] for p in positions][0] == "d2" and {IDS[p] for p in positions} == {"d0", "d2", "d3"}
    assert list(scores) == sorted(scores, reverse=True)


def test_idf_is_higher_for_rarer_terms():
    idf = BM25Index.build(TEXTS).idf(["model", "speech", "never-seen"])
    assert idf["never-seen"] > idf["speech"] > idf["model"]


def small_snapshot(engine="bm25s"):
    vectors = np.eye(5, 3, dtype=np.float32)
    metadatas = [{"title": f"Paper {i}", "url": "https://example.org/é"} for i in range(5)]
    passages = Passages.group(
        IDS, owners=[IDS[1], IDS[1]], numbers=[1, 0], vectors=np.eye(2, 3, dtype=np.float32), dimension=3
    )
    return Snapshot.build(IDS, TEXTS, vectors, metadatas, passages, engine), vectors, metadatas


@pytest.mark.parametrize("engine", ["bm25s", "rank-bm25"])
def test_saved_snapshot_loads_only_with_matching_fingerprint_and_settings(tmp_path, engine):
    snapshot, vectors, metadatas = small_snapshot(engine)
    snapshot.save(tmp_path, "fp-1")
    loaded, why = Snapshot.load(tmp_path, "fp-1", engine, Tokenizer(), BM25Params())
    assert why == "loaded" and list(loaded.ids) == IDS and np.array_equal(loaded.vectors, vectors)
    passages = loaded.segments[0].passages
    assert passages.offsets.tolist() == [0, 0, 2, 2, 2, 2] and np.array_equal(passages.vectors, np.eye(2, 3)[::-1])
    assert [loaded.records.get(i) for i in (4, 0)] == [(TEXTS[4], metadatas[4]), (TEXTS[0], metadatas[0])]
    assert loaded.bm25.scores(["lora"]) == pytest.approx(snapshot.bm25.scores(["lora"]))
    assert Snapshot.load(tmp_path, "fp-2", engine, Tokenizer(), BM25Params())[0] is None
    assert Snapshot.load(tmp_path, "fp-1", engine, Tokenizer(), BM25Params(k1=2.0))[0] is None
    assert len(list(tmp_path.glob("segment-*"))) == 1


@pytest.mark.parametrize("resident_rows", [100, 0])  # a small table's list and dict; a large one's binary search
def test_strings_are_found_by_row_and_rows_by_string_in_memory_and_mapped(tmp_path, monkeypatch, resident_rows):
    monkeypatch.setattr(strings_module, "RESIDENT_ROWS", resident_rows)
    ids = ["2401.00002", "b", "é-accent", "2401.00001", "a-longer-id-than-any-other"]
    StringTable.of(ids).save(tmp_path, "ids")
    StringTable.of(sorted(ids)).save(tmp_path, "sorted")
    mapped, ascending = StringTable.load(tmp_path, "ids"), StringTable.load(tmp_path, "sorted")
    assert mapped.resident == (resident_rows > 0)
    assert not mapped.values.flags.writeable and not mapped.order.flags.writeable  # pages shared by every process
    assert ascending.order is None and not (tmp_path / "sorted-order.npy").exists()  # in order: no order to keep
    asked = ["b", "2401.00001", "missing", "a-longer-id-than-any-other-by-far", "é-accent", "2401.0000"]
    for found in (StringTable.of(ids), mapped):
        assert len(found) == 5 and list(found) == ids and found[2] == "é-accent"
        assert found.at([4, 0]) == [ids[4], ids[0]]
        assert found.rows_of(asked).tolist() == [1, 3, -1, -1, 2, -1]
    assert ascending.at(ascending.rows_of(asked[:2] + asked[4:5])) == ["b", "2401.00001", "é-accent"]
    assert len(StringTable.of([])) == 0 and StringTable.of([]).rows_of(["a"]).tolist() == [-1]


def test_a_segment_written_with_ids_and_terms_as_json_still_loads(tmp_path):
    """Segments saved before the ids and the BM25 terms were arrays (JSON lists) load as they are, with no rebuild."""
    snapshot = small_snapshot()[0]
    snapshot.save(tmp_path, "fp-1")
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    entry = manifest["segments"][0]
    folder = tmp_path / entry["name"]
    segment = snapshot.segments[0]
    for name, strings in (("ids", segment.ids), ("bm25-terms", segment.postings.terms)):
        for stale in folder.glob(f"{name}*.npy"):
            stale.unlink()
            del entry["files"][stale.name]
        legacy = "ids.json" if name == "ids" else "bm25-vocabulary.json"
        (folder / legacy).write_text(json.dumps(list(strings)))
        entry["files"][legacy] = file_digest(folder / legacy)
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    loaded, why = Snapshot.load(tmp_path, "fp-1", "bm25s", Tokenizer(), BM25Params())
    assert why == "loaded" and list(loaded.ids) == IDS
    assert loaded.positions(["d3", "d9", "d0"]).tolist() == [3, -1, 0]
    assert loaded.bm25.scores(["lora", "prune"]) == pytest.approx(snapshot.bm25.scores(["lora", "prune"]))


def test_a_snapshot_of_another_format_version_is_rebuilt_not_misread(tmp_path):
    small_snapshot()[0].save(tmp_path, "fp-1")
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["format"] = FORMAT_VERSION - 1
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    loaded, why = Snapshot.load(tmp_path, "fp-1", "bm25s", Tokenizer(), BM25Params())
    assert loaded is None and f"format {FORMAT_VERSION - 1}" in why


def test_file_digest_reads_samples_of_a_large_file_and_sees_damage_anywhere_it_samples(tmp_path):
    path = tmp_path / "big.bin"
    data = bytearray(np.random.default_rng(0).integers(0, 256, 8 << 20, dtype=np.uint8).tobytes())
    path.write_bytes(data)
    digest = file_digest(path)
    step = (len(data) - SAMPLE_BLOCK) // (SAMPLE_BLOCKS + 1)
    for offset in (0, len(data) - 1, 4 * step + 10):  # in the first, the last and a middle sampled block
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        path.write_bytes(damaged)
        assert file_digest(path) != digest
    path.write_bytes(data[:-1])
    assert file_digest(path) != digest
