"""The BM25 index: both engines, candidate-only term scoring, IDF, save/load with fingerprints."""

import numpy as np
import pytest

from index.lexical import BM25Params, LexicalIndex
from index.passages import Passages
from index.tokenize import Tokenizer

TEXTS = ["pruning neural networks", "diffusion models for images", "LLM pruning with LoRA adapters", "LoRA for diffusion", "speech models"]
IDS = [f"d{i}" for i in range(len(TEXTS))]


@pytest.mark.parametrize("engine", ["bm25s", "rank-bm25"])
def test_term_scores_on_candidates_equal_full_scores(engine):
    index = LexicalIndex.build(IDS, TEXTS, engine)
    positions = np.array([4, 0, 2, 3])
    for term in ["prune", "lora", "diffus", "unknown"]:
        assert index.term_scores(term, positions) == pytest.approx(index.scores([term])[positions])


def test_search_returns_only_matching_documents_best_first():
    index = LexicalIndex.build(IDS, TEXTS)
    positions, scores = index.search(Tokenizer().tokens("LoRA pruning"), 10)
    assert [IDS[p] for p in positions][0] == "d2" and set(IDS[p] for p in positions) == {"d0", "d2", "d3"}
    assert list(scores) == sorted(scores, reverse=True)


def test_idf_is_higher_for_rarer_terms():
    idf = LexicalIndex.build(IDS, TEXTS).idf(["model", "speech", "never-seen"])
    assert idf["never-seen"] > idf["speech"] > idf["model"]


def test_saved_index_loads_only_with_matching_fingerprint_and_settings(tmp_path):
    vectors = np.eye(5, 3, dtype=np.float32)
    metadatas = [{"title": f"Paper {i}", "url": "https://example.org/é"} for i in range(5)]
    passages = Passages.group(IDS, owners=[IDS[1], IDS[1]], numbers=[1, 0], vectors=np.eye(2, 3, dtype=np.float32), dimension=3)
    LexicalIndex.build(IDS, TEXTS, vectors=vectors, metadatas=metadatas, passages=passages).save(tmp_path, "fp-1")
    loaded, why = LexicalIndex.load(tmp_path, "fp-1", "bm25s", Tokenizer(), BM25Params())
    assert why == "loaded" and loaded.ids == IDS and np.array_equal(loaded.vectors, vectors)
    assert loaded.passages.offsets.tolist() == [0, 0, 2, 2, 2, 2] and np.array_equal(loaded.passages.vectors, np.eye(2, 3)[::-1])
    assert [loaded.records.get(i) for i in (4, 0)] == [(TEXTS[4], metadatas[4]), (TEXTS[0], metadatas[0])]
    assert LexicalIndex.load(tmp_path, "fp-2", "bm25s", Tokenizer(), BM25Params())[0] is None
    assert LexicalIndex.load(tmp_path, "fp-1", "bm25s", Tokenizer(), BM25Params(k1=2.0))[0] is None
    assert len(list(tmp_path.glob("build-*"))) == 1
