"""The relevance gate reads meaning and does not depend on k: pure decisions on made-up vectors, then the real
model on the bundled index (no mocks)."""

import numpy as np
import pytest

from paperchat.eval.datasets import Query, in_dev_half, load_bundled_set, load_gate_set
from paperchat.gate import (
    MEANING_THRESHOLD,
    concepts_by_meaning,
    evidence,
    key_concepts,
    meaning_matches,
    uncovered_by_words,
)
from paperchat.index.bm25 import BM25Params
from paperchat.index.passages import Lexicon, Passages
from paperchat.index.snapshot import Snapshot
from paperchat.index.tokenize import Tokenizer

CONTINUAL = "teaching a model new tasks one after another without wiping out the old ones"
NEAR_MISS = "graph neural networks for road traffic forecasting"


def test_a_document_expresses_a_concept_when_one_of_its_words_is_close_enough():
    concepts = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    documents = [
        np.array([[0.8, 0.6, 0.0], [0.0, 0.0, 1.0]]),  # one word at cosine 0.8 with concept 0 and 0.6 with concept 1
        np.array([[0.0, 0.0, 1.0]]),  # none close
        np.zeros((0, 3)),  # no words at all
    ]
    assert meaning_matches(concepts, documents, threshold=0.7) == [{0}, set()]
    assert meaning_matches(concepts, documents, threshold=0.6) == [{0}, {0}]
    assert meaning_matches(np.zeros((0, 3)), documents) == []


class Embed:
    """Made-up word vectors; remembers each call."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def __call__(self, words: list[str]) -> np.ndarray:
        self.calls.append(words)
        return np.array([self.vectors[w] for w in words])


def test_a_word_covered_by_meaning_counts_as_covered_and_only_what_no_abstract_expresses_is_named():
    tokenizer = Tokenizer()
    question = key_concepts(NEAR_MISS, tokenizer)
    documents = [
        set(tokenizer.tokens("graph neural networks predict molecules")),
        set(tokenizer.tokens("neural networks on roads")),
    ]
    assert [question[i].word for i in uncovered_by_words(question, documents)] == ["traffic", "forecasting"]
    # the first abstract's words hold one close to "forecasting" ("predict"), none close to "traffic"
    words = {0: np.array([[0.9, 0.0, 0.436], [0.0, 0.0, 1.0]]), 1: np.array([[0.0, 0.0, 1.0]])}
    embed = Embed({"traffic": [0.0, 1.0, 0.0], "forecasting": [1.0, 0.0, 0.0]})
    meaning = concepts_by_meaning(question, documents, lambda j: words[j], embed)
    assert embed.calls == [["traffic", "forecasting"]]  # one call, with only the words no abstract holds
    assert meaning == {5: {0}}  # "forecasting", by the first abstract
    idf = {"graph": 2.0, "neural": 1.0, "network": 1.0, "road": 3.0, "traffic": 4.0, "forecast": 2.0}
    by_words = evidence(0.6, question, [], idf, documents, set(idf), max_idf=8.0)
    by_meaning = evidence(0.6, question, [], idf, documents, set(idf), max_idf=8.0, meaning=meaning)
    assert by_words.uncovered == ("traffic forecasting",) and by_words.missing == pytest.approx(6 / 13)
    assert by_meaning.uncovered == ("traffic",) and by_meaning.covered == (
        "graph neural networks",
        "road",
        "forecasting",
    )
    assert by_meaning.missing == pytest.approx(4 / 13) and by_meaning.coverage == pytest.approx(6 / 13)
    assert by_meaning.rarest_missing == pytest.approx(0.5)
    # A word covered by meaning is a phrase of its own next to words covered by words.
    adjacent = key_concepts("graph neural networks forecasting", tokenizer)
    joined = evidence(0.6, adjacent, [], idf, documents, set(idf), max_idf=8.0, meaning={3: {0}})
    assert joined.covered == ("graph neural networks", "forecasting") and joined.uncovered == ()
    # Nothing is embedded when every word is held by some abstract.
    covered = Embed({})
    assert concepts_by_meaning(question[:3], documents, lambda j: words[0], covered) == {} and not covered.calls


def test_the_lexicon_holds_every_word_once_is_saved_with_the_snapshot_and_reuses_known_vectors(tmp_path):
    def encode(words: list[str]) -> np.ndarray:
        encode.asked += words
        return np.array([[float(len(w)), 1.0, 0.0] for w in words], dtype=np.float32)

    encode.asked = []
    texts = ["Forgetting\nModels forget; class-incremental models forget less.", "Traffic on roads"]

    def passages(ids: list[str]) -> Passages:
        return Passages.group(ids, [], [], np.zeros((0, 3)), 3)

    snapshot = Snapshot.build(
        ["a", "b"], texts, np.eye(2, 3, dtype=np.float32), [{}, {}], passages(["a", "b"]), encode=encode
    )
    assert snapshot.lexicon.words == sorted(encode.asked)
    assert set(snapshot.lexicon.words) == {
        "forgetting", "models", "forget", "class-incremental", "class", "incremental", "less", "traffic", "roads"
    }  # fmt: skip
    rows = snapshot.lexicon.rows(Tokenizer().tokens("forgets"))  # "forget" and "forgetting": one term
    assert sorted(snapshot.lexicon.words[r] for r in rows) == ["forget", "forgetting"]
    snapshot.save(tmp_path, "fp")
    loaded, why = Snapshot.load(tmp_path, "fp", "bm25s", Tokenizer(), BM25Params())
    assert why == "loaded" and loaded.lexicon.words == snapshot.lexicon.words
    assert np.array_equal(loaded.lexicon.vectors, snapshot.lexicon.vectors)
    encode.asked = []
    ids = ["a", "b", "c"]
    more = Snapshot.build(
        ids,
        [*texts, "Road traffic"],
        np.eye(3, dtype=np.float32),
        [{}] * 3,
        passages(ids),
        encode=encode,
        previous=loaded,
    )
    assert encode.asked == ["road"] and len(more.lexicon) == len(snapshot.lexicon) + 1
    assert len(Snapshot.build(["a"], texts[:1], np.eye(1, 3, dtype=np.float32), [{}], passages(["a"])).lexicon) == 0


def test_real_words_forgot_is_expressed_by_an_abstract_on_forgetting_and_traffic_by_none_on_graphs(assistant):
    """The meaning decision with the real model, on the bundled abstracts a question retrieves (the lexicon of
    those abstracts built here with the model's batched `encode`)."""
    embedder, tokenizer = assistant.store.embedder, Tokenizer()

    def meaning(question: str) -> dict[str, set[int]]:
        top = assistant.retrieve(question, k=5, gate=False).closest
        texts = [f"{h.title}\n{h.abstract}" for h in top]
        lexicon = Lexicon.build(texts, tokenizer.tokens, embedder.encode, embedder.dimension)
        documents = [set(tokenizer.tokens(h.title + " " + h.abstract)) for h in top]
        concepts = key_concepts(question, tokenizer)
        found = concepts_by_meaning(
            concepts,
            documents,
            lambda j: lexicon.vectors[lexicon.rows(documents[j])],
            lambda words: np.vstack([embedder.encode_query(w) for w in words]),
        )
        uncovered = uncovered_by_words(concepts, documents)
        return {concepts[i].word: found.get(i, set()) for i in uncovered}

    forgot = meaning("machine unlearning: how do you check that the model really forgot the data?")
    assert forgot["forgot"], f"no abstract expresses 'forgot' at cosine {MEANING_THRESHOLD}"
    near = meaning(NEAR_MISS)
    assert near["traffic"] == set() and near["road"] == set()


def test_a_paraphrase_of_continual_learning_is_answered(assistant):
    assert len(assistant.store.snapshot().lexicon), "the store builds the snapshot's lexicon"
    answer = assistant.retrieve(CONTINUAL, k=3)
    assert answer.relevant and answer.hits, (answer.relevance, answer.missing)
    assert "class-incremental" in " ".join(h.title.lower() for h in answer.hits)


def test_a_near_miss_is_still_declined_and_names_the_traffic_concept(assistant):
    answer = assistant.retrieve(NEAR_MISS, k=1)
    assert not answer.relevant and answer.hits == []
    assert any("traffic" in phrase for phrase in answer.missing) and "graph neural networks" in answer.covered


def sample_questions(per_set: int = 6) -> list[Query]:
    """The first few dev-half questions of judged sets (chat turns among them) and of the gate sets."""
    sets = [load_bundled_set(name).queries for name in ("questions", "blind_paraphrase", "chats")]
    sets += [[q for q, _ in load_gate_set(name)] for name in ("offtopic", "blind_offtopic", "blind_offtopic2")]
    return [q for queries in sets for q in [q for q in queries if in_dev_half(q.group)][:per_set]]


def test_k_does_not_change_the_judgement(assistant):
    questions = sample_questions()
    assert len(questions) >= 15 and any(q.history for q in questions) and any(q.kind == "near" for q in questions)
    for q in questions:
        one, ten = (assistant.retrieve(q.text, k=k, history=q.history) for k in (1, 10))
        assert (one.relevant, one.relevance, one.missing) == (ten.relevant, ten.relevance, ten.missing), q.text
