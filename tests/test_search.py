"""End-to-end retrieval on the bundled corpus with the real model and embedded Chroma."""

import pytest

from paperchat import Hit, PaperchatError

QUESTIONS = [
    (
        "is there a training-free way to detect text written by an LLM?",
        "training-free-llm-generated-text-detection-by-mining-token-probability-sequences",
    ),
    ("Lastde++", "training-free-llm-generated-text-detection-by-mining-token-probability-sequences"),
    (
        "differentiable pruning without extra hyperparameters",
        "pdp-parameter-free-differentiable-pruning-is-all-you-need",
    ),
    ("shrinking code models to a few megabytes", "compressing-pre-trained-models-of-code-into-3-mb"),
    (
        "edge-of-reach problem in offline model-based RL",
        "the-edge-of-reach-problem-in-offline-model-based-reinforcement-learning",
    ),
    (
        "rule-based reinforcement learning for image classification with multimodal LLMs",
        "cls-rl-image-classification-with-rule-based-reinforcement-learning",
    ),
]


@pytest.mark.parametrize("question, paper", QUESTIONS)
def test_handwritten_questions_find_their_paper_in_the_top_3(assistant, question, paper):
    assert paper in [hit.id for hit in assistant.search(question, k=3)]


def test_every_hit_explains_itself(assistant):
    hits = assistant.search("knowledge distillation for large language models", k=5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(isinstance(h, Hit) for h in hits)
    assert all(h.score >= hits[-1].score for h in hits)
    top = hits[0]
    assert top.bm25 is not None and top.vector is not None and (top.bm25_rank or top.vector_rank)
    assert top.citation.title == top.title and top.citation.url.startswith("https://")
    assert top.citation.pages and top.citation.dates
    assert "**" in top.snippet and top.snippet.replace("**", "")[:40] in top.abstract.replace("**", "")


@pytest.mark.parametrize("mode", ["bm25", "vector", "hybrid"])
def test_each_mode_ranks_an_exact_title_first(assistant, mode):
    assert assistant.search("Light Schrödinger Bridge", k=3, mode=mode)[0].id == "light-schrodinger-bridge"


def test_bad_requests_are_clear_errors(assistant):
    with pytest.raises(PaperchatError, match="empty"):
        assistant.search("   \n\t ")
    with pytest.raises(PaperchatError, match="hybrid, bm25, vector"):
        assistant.search("lora", mode="fuzzy")
    for k in (0, 1001, "5"):
        with pytest.raises(PaperchatError, match="1 to 1000"):
            assistant.search("lora", k=k)


def test_long_query_is_cut_with_a_notice(assistant):
    result = assistant.retrieve("pruning " * 600, k=1)
    assert len(result.query) <= 2000 and result.notices and "cut" in result.notices[0]


@pytest.mark.parametrize(
    "question",
    ["what's the best pizza in naples?", "how do I change a flat tyre on my bike", "who won the 2018 world cup final"],
)
def test_off_topic_questions_get_nothing_relevant(assistant, question):
    answer = assistant.ask(question)
    assert (
        not answer.relevant
        and answer.hits == []
        and answer.text.startswith("No paper here covers")
        and "[1]" not in answer.text
    )


def test_a_near_miss_names_what_no_paper_covers_and_the_closest_papers(assistant):
    answer = assistant.ask("How do graph neural networks forecast road traffic?")
    assert (
        not answer.relevant
        and answer.hits == []
        and answer.missing[0].endswith("road traffic")
        and "graph neural networks" in answer.covered
    )
    assert answer.text.startswith(f"No paper here covers \u201c{answer.missing[0]}\u201d") and "[1] " in answer.text


def test_answer_cites_its_sources(assistant):
    answer = assistant.ask("machine unlearning without retraining", k=3)
    assert answer.relevant and "[1]" in answer.text and len(answer.hits) == 3


def test_a_follow_up_is_searched_with_its_context(assistant):
    answer = assistant.ask("what about for vision models?", ["pruning large language models"], k=5)
    assert answer.rewritten and [(f.role, f.text) for f in answer.searched] == [
        ("question", "what about for vision models?"),
        ("context", "pruning large language models"),
        ("rewrite", "pruning vision models"),
    ]
    assert any("prun" in h.title.lower() for h in answer.hits)
    assert answer.to_dict()["searched"][1] == {
        "text": "pruning large language models",
        "weight": 0.7,
        "role": "context",
    }


def test_more_like_a_cited_source(assistant):
    first = assistant.ask("knowledge distillation", k=3)
    similar = assistant.ask("more like [2]", ["knowledge distillation"], k=3)
    assert similar.query == f"more like: {first.hits[1].title}"
    assert first.hits[1].id not in [h.id for h in similar.hits] and len(similar.hits) == 3


def test_the_large_index_paths_give_the_small_index_answers_where_hnsw_is_exact(assistant, monkeypatch):
    """Above EXACT_SEARCH_LIMIT papers the vector side takes Chroma's HNSW neighbours and orders them by MaxP on the
    pool's passages; above BM25_ON_WORKER_ROWS BM25 and its top run on another core while the query embeds. On the
    bundled 380 papers, with a pool of all of them (k 400) and ef_search 600, HNSW is exact, so both paths give the
    same hits, scores and side ranks: for a question, and for a follow-up whose context is weighed after the
    embedding."""
    from paperchat import search as search_module
    from paperchat.chat import Formulation

    queries = [
        "knowledge distillation for large language models",
        [Formulation("which of them use reinforcement learning?"), Formulation("code generation", 0.5, "context")],
    ]

    snapshot = assistant.store.snapshot()

    def answers():
        found = []
        for query in queries:
            retrieval = assistant.searcher.retrieve(query, k=400, gate=False)
            hits = retrieval.hits[:20]
            found.append([(h.id, round(h.score, 4), h.bm25_rank, h.vector_rank) for h in hits])
            rows = snapshot.positions([h.id for h in hits])
            searched = [
                (snapshot.bm25.scores(snapshot.tokenizer.tokens(f.text)), f.weight) for f in retrieval.formulations
            ]
            weighed = [sum(weight * scores[row] for scores, weight in searched) for row in rows.tolist()]
            assert [h.bm25 for h in hits] == pytest.approx(weighed, abs=0.02)  # the context's weight, rounded: 0.001
        return found

    small = answers()
    monkeypatch.setattr(search_module, "EXACT_SEARCH_LIMIT", 10)
    monkeypatch.setattr(search_module, "BM25_ON_WORKER_ROWS", 10)
    assert answers() == small and all(len(hits) == 20 for hits in small)
