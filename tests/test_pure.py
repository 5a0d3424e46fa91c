"""Pure functions on hand-computed examples: tokenizer, fusion, snippets, passages, follow-up rewriting."""

import math
import os
from collections import Counter

import numpy as np
import pytest

from paperchat.chat import (
    Formulation,
    content_phrases,
    content_words,
    formulations,
    is_follow_up,
    nothing_relevant,
    rewrite_follow_up,
    topic_chunks,
)
from paperchat.fusion import (
    adaptive_bm25_weight,
    expansion_terms,
    feedback_weights,
    rank_order,
    rocchio,
    rrf,
    smooth,
    zscore,
)
from paperchat.gate import Concept, GateModel, evidence, key_concepts
from paperchat.index.bm25 import DocumentTerms, kth_lower_bound, top_positions
from paperchat.index.passages import PassageBlock, Passages, pack_passages
from paperchat.index.tokenize import Tokenizer
from paperchat.snippets import choose_sentences, make_snippet, mark_terms, split_sentences

tok = Tokenizer()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("GPT-4o", ["gpt-4o", "gpt", "4o"]),
        ("Llama-3 and LoRA", ["llama-3", "llama", "3", "lora"]),
        ("Lastde++ is fast", ["lastde++", "lastd", "fast"]),
        ("The models were pruning", ["model", "prune"]),
        ("Qwen2.5-VL", ["qwen2.5-vl", "qwen2", "5", "vl"]),
    ],
)
def test_tokenizer_keeps_identifiers_and_stems_words(text, expected):
    assert tok.tokens(text) == expected


def test_identifier_queries_match_documents_either_way():
    document = set(tok.tokens("We introduce Lastde++ and compare with GPT-4o."))
    assert set(tok.tokens("lastde++")) <= document
    assert set(tok.tokens("GPT 4o")) <= document
    assert set(tok.tokens("gpt-4o")) <= document


def test_rrf_matches_hand_computation():
    fused = rrf({"bm25": ["a", "b", "c"], "vector": ["b", "d"]}, k=60)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63)
    assert fused["d"] == pytest.approx(1 / 62)
    assert sorted(fused, key=fused.get, reverse=True) == ["b", "a", "d", "c"]


def test_weighted_rrf():
    fused = rrf({"bm25": ["a", "b"], "vector": ["b", "a"]}, k=1, weights={"bm25": 3.0, "vector": 1.0})
    assert fused == pytest.approx({"a": 3 / 2 + 1 / 3, "b": 3 / 3 + 1 / 2})


def test_zscore():
    assert zscore(np.array([1.0, 3.0])) == pytest.approx([-1.0, 1.0])
    assert zscore(np.array([5.0, 5.0])).tolist() == [0.0, 0.0]


def test_adaptive_weight_leans_on_the_closer_side_and_is_clipped():
    assert adaptive_bm25_weight(0.5, 0.5, 1.0) == pytest.approx(0.5)
    assert adaptive_bm25_weight(0.5, 0.7, 1.0) == pytest.approx(0.3)
    assert adaptive_bm25_weight(0.5, 0.2, 1.0) == pytest.approx(0.8)
    assert adaptive_bm25_weight(0.5, -1.0, 1.0) == pytest.approx(0.9)


def test_rocchio_moves_towards_feedback_and_renormalises():
    moved = rocchio(np.array([1.0, 0.0]), np.array([[0.0, 1.0], [0.0, 1.0]]), beta=1.0)
    assert moved == pytest.approx([2**-0.5, 2**-0.5])


def document_terms(tokens: list[str], idf: dict[str, float]) -> DocumentTerms:
    counted = Counter(tokens)
    return DocumentTerms(
        np.array(list(counted), dtype=str),
        np.array(list(counted.values()), dtype=np.float64),
        len(tokens),
        np.array([idf[t] for t in counted]),
    )


def test_expansion_terms_weights_frequency_by_idf():
    idf = {"wing": 2.0, "flow": 1.0, "lift": 1.0, "drag": 3.0}
    docs = [document_terms(["wing", "flow", "flow", "lift"], idf), document_terms(["flow", "drag"], idf)]
    # flow: 2/4*1 + 1/2*1 = 1.0; drag: 1/2*3 = 1.5; wing: 1/4*2 = 0.5; lift: 1/4*1 = 0.25
    assert expansion_terms(docs, exclude={"wing"}, count=2) == pytest.approx({"drag": 1.0, "flow": 1.0 / 1.5})
    # equal weights go by term: lift (0.25) before wing (0.25) once wing's IDF is halved
    halved = [document_terms(["wing", "lift"], {"wing": 1.0, "lift": 1.0})]
    assert list(expansion_terms(halved, exclude=set(), count=1)) == ["lift"]


def test_feedback_weights_are_a_softmax_of_scores():
    # exp(0) : exp(-ln 3) = 1 : 1/3, normalised to 3/4 : 1/4
    assert feedback_weights(np.array([2.0, 2.0 - np.log(3.0)])) == pytest.approx([0.75, 0.25])
    assert feedback_weights(np.array([5.0, 5.0])) == pytest.approx([0.5, 0.5])


def test_weighted_rocchio_and_expansion_follow_document_weights():
    moved = rocchio(np.array([1.0, 0.0]), np.array([[0.0, 1.0], [1.0, 0.0]]), beta=1.0, weights=np.array([0.75, 0.25]))
    # (1, 0) + (0.25, 0.75) = (1.25, 0.75), normalised
    assert moved == pytest.approx(np.array([1.25, 0.75]) / np.hypot(1.25, 0.75))
    idf = {"flow": 1.0, "drag": 1.0, "lift": 1.0}
    docs = [document_terms(["flow", "drag"], idf), document_terms(["lift", "lift"], idf)]
    # flow = drag = 0.75 * 1/2; lift = 0.25 * 2/2
    assert expansion_terms(docs, exclude=set(), count=3, weights=[0.75, 0.25]) == pytest.approx(
        {"drag": 1.0, "flow": 1.0, "lift": 0.25 / 0.375}
    )


def test_rank_order_puts_the_best_first_ties_by_id_and_leaves_out_minus_infinity():
    scores = np.array([1.0, 2.0, -np.inf, 2.0, 0.5])
    assert rank_order(scores, ["e", "d", "c", "b", "a"]) == [3, 1, 0, 4]
    assert rank_order(np.zeros(0), []) == []


def test_smooth_adds_score_weighted_similarity_to_top_documents():
    scores = np.array([2.0, 1.0, 0.0])
    similarity_to_top = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    smoothed = smooth(scores, similarity_to_top, np.array([2.0, 1.0]), strength=1.0)
    assert smoothed == pytest.approx([2.0 + 2 / 3, 1.0 + 1 / 3, 0.5])


def test_split_sentences():
    assert split_sentences("First one. Second one! 3 is a number? yes. End") == [
        "First one.",
        "Second one!",
        "3 is a number? yes.",
        "End",
    ]


def test_short_abstracts_have_no_passages():
    assert pack_passages("T", ["a.", "b."], [2, 3, 4], window=9) == []


def test_passages_pack_whole_sentences_up_to_the_window_title_first():
    sentences = ["One.", "Two.", "Three.", "Four."]
    # title 3 tokens, sentences 4, 2, 5, 3 tokens: 17 in all, window 10
    assert pack_passages("T", sentences, [3, 4, 2, 5, 3], window=10) == ["T One. Two.", "Three. Four."]


def test_an_over_long_sentence_is_a_passage_of_its_own():
    assert pack_passages("T", ["Long.", "Short."], [2, 12, 1], window=10) == ["T", "Long.", "Short."]


def test_maxp_takes_each_documents_best_passage():
    # documents 0 and 2 own passages [0, 1] and [2]; document 1 owns none; -1 is unknown here
    offsets = np.array([0, 2, 2, 3])
    passages = np.array([[0.1, 0.0], [0.9, 0.0], [0.2, 0.0]], dtype=np.float16)
    block = PassageBlock.gather(np.array([2, 0, 1, -1]), offsets, passages)
    query = np.array([1.0, 0.0], dtype=np.float32)
    assert block.best(query, np.array([0.3, 0.5, 0.4, 0.7])).tolist() == pytest.approx([0.3, 0.9, 0.4, 0.7], abs=1e-3)
    moved = np.array([-1.0, 0.0], dtype=np.float32)  # another query vector, the same gathered passages
    assert block.best(moved, np.array([-0.5, -0.5, 0.0, 0.0])).tolist() == pytest.approx([-0.2, -0.1, 0.0, 0.0], 1e-3)


def test_passage_blocks_of_segments_join_on_the_candidates_positions():
    one = PassageBlock.gather(np.array([0]), np.array([0, 2]), np.array([[0.2], [0.6]], dtype=np.float32))
    two = PassageBlock.gather(np.array([1, 0]), np.array([0, 1, 2]), np.array([[0.9], [0.1]], dtype=np.float32))
    joined = PassageBlock.joined([(np.array([2]), one), (np.array([0, 1]), two)], dimension=1)
    best = joined.best(np.array([1.0], dtype=np.float32), np.zeros(3))
    assert best.tolist() == pytest.approx([0.1, 0.9, 0.6])


def test_passages_are_grouped_by_owner_in_passage_order():
    vectors = np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8], [0.8, 0.6]], dtype=np.float32)
    grouped = Passages.group(
        ["a", "b"], owners=["b", "a", "gone", "a"], numbers=[0, 1, 0, 0], vectors=vectors, dimension=2
    )
    assert grouped.offsets.tolist() == [0, 2, 3]
    assert grouped.vectors.ravel().tolist() == pytest.approx([0.8, 0.6, 1.0, 0.0, 0.0, 1.0])
    query = np.array([1.0, 0.0], dtype=np.float32)
    assert grouped.scan(query, np.array([0.5, 0.5])).tolist() == pytest.approx([1.0, 0.5])
    assert grouped.block(np.array([1])).best(query, np.array([0.5])).tolist() == pytest.approx([0.5])


def test_snippet_picks_best_sentences_in_reading_order_and_marks_terms():
    abstract = "We study vision. Pruning is hard. We propose PDP for pruning networks. It is fast."
    terms = tok.tokens("pruning networks")
    assert choose_sentences(split_sentences(abstract), set(terms), tok) == [1, 2]
    assert make_snippet(abstract, terms, tok) == "**Pruning** is hard. We propose PDP for **pruning** **networks**."


def test_snippet_without_match_falls_back_to_opening_sentence():
    assert make_snippet("Opening says what. Then details.", tok.tokens("unrelated"), tok) == "Opening says what."


def test_mark_terms_marks_stemmed_variants():
    assert mark_terms("Models model modeling", set(tok.tokens("model")), tok) == "**Models** **model** **modeling**"


@pytest.mark.parametrize(
    "message, follow_up",
    [
        ("what about for vision transformers?", True),
        ("and for code models?", True),
        ("does that work for diffusion models too?", True),
        ("do any of them work without training?", True),
        ("which of those use reinforcement learning?", True),
        ("how about quantization instead", True),
        ("diffusion models for image generation", False),
        ("what is the Lastde++ detector?", False),
    ],
)
def test_follow_up_detection(message, follow_up):
    assert is_follow_up(message) is follow_up


def test_additive_follow_up_keeps_topic_and_adds_new_words():
    assert (
        rewrite_follow_up("do any of them work without training?", "methods for detecting LLM-generated text")
        == "detecting LLM-generated text without training"
    )
    assert (
        rewrite_follow_up("does that work for diffusion models too?", "which papers use LoRA?")
        == "LoRA diffusion models"
    )


def test_substitution_follow_up_drops_the_replaced_chunk():
    assert topic_chunks("pruning large language models") == ["pruning", "large language models"]
    assert (
        rewrite_follow_up("what about for vision models?", "pruning large language models") == "pruning vision models"
    )
    assert (
        rewrite_follow_up("and for code models?", "knowledge distillation for LLMs")
        == "knowledge distillation code models"
    )
    assert (
        rewrite_follow_up("what about quantization?", "pruning large language models")
        == "large language models quantization"
    )
    assert rewrite_follow_up("how about prefix tuning instead", "LoRA") == "LoRA prefix tuning"


def test_more_follow_up_forms():
    assert (
        rewrite_follow_up("how about instead for image classifiers?", "machine unlearning for LLMs")
        == "machine unlearning image classifiers"
    )
    assert (
        rewrite_follow_up("any trained with reinforcement learning?", "vision-language models")
        == "vision-language models trained reinforcement learning"
    )
    assert (
        rewrite_follow_up("what are the downsides or failure modes?", "model editing in language models")
        == "model editing language models downsides failure modes"
    )


@pytest.mark.parametrize(
    "message",
    [
        "Unrelated: which papers propose benchmarks for long-context models?",
        "ok, totally unrelated, but which papers propose benchmarks for long-context models?",
        "switching gears completely - which papers propose benchmarks for long-context models?",
    ],
)
def test_announced_topic_switch_is_not_merged(message):
    assert rewrite_follow_up(message, "model compression") == "which papers propose benchmarks for long-context models?"


def test_standalone_question_is_not_rewritten():
    assert (
        rewrite_follow_up("diffusion models for image generation", "pruning LLMs")
        == "diffusion models for image generation"
    )


def test_content_words_drop_filler_and_references():
    assert content_words("tell me about papers on LoRA for those") == ["LoRA"]


def test_a_follow_up_is_searched_as_itself_its_context_and_the_rule_rewrite():
    assert formulations("what about for vision models?", "pruning large language models") == [
        Formulation("what about for vision models?"),
        Formulation("pruning large language models", 0.7, "context"),
        Formulation("pruning vision models", 0.5, "rewrite"),
    ]
    # A phrasing no rule knows still keeps the context; a rewrite that adds nothing is left out.
    assert formulations("and the failure cases?", "model editing") == [
        Formulation("and the failure cases?"),
        Formulation("model editing", 0.7, "context"),
        Formulation("model editing failure cases", 0.5, "rewrite"),
    ]
    assert formulations("diffusion models for image generation", "") == [
        Formulation("diffusion models for image generation")
    ]


def test_what_a_follow_up_rules_out_is_not_searched_for():
    searched = formulations(
        "could the same be done to the KV cache instead of the weights?", "How does quantization shrink LLM memory?"
    )
    assert searched[0].text == "could the same be done to the KV cache ?"
    assert all("weights" not in f.text for f in searched if f.role != "context")
    assert (
        formulations("only the ones doing editing, not generation", "diffusion models for video")[0].text
        == "only the ones doing editing"
    )


def test_an_announced_new_subject_is_searched_alone():
    assert formulations("Unrelated: benchmarks for long-context models?", "model compression") == [
        Formulation("benchmarks for long-context models?")
    ]


def test_content_phrases_split_at_stopwords_filler_and_punctuation():
    assert content_phrases("How do graph neural networks forecast road traffic? And GPT-4o (or Lastde++) papers") == [
        ["graph", "neural", "networks", "forecast", "road", "traffic"],
        ["GPT-4o"],
        ["Lastde++"],
    ]


def test_evidence_names_the_uncovered_phrase_and_weighs_what_is_missing():
    tokenizer = Tokenizer()
    question = key_concepts("graph neural networks for road traffic", tokenizer)
    idf = {"graph": 2.0, "neural": 1.0, "network": 1.0, "road": 3.0, "traffic": 4.0}
    documents = [
        set(tokenizer.tokens("graph neural networks predict molecules")),
        set(tokenizer.tokens("neural networks on roads")),
    ]
    found = evidence(0.6, question, [], idf, documents, known={"graph", "neural", "network", "road"}, max_idf=8.0)
    assert found.covered == ("graph neural networks", "road") and found.uncovered == (
        "traffic",
    )  # "road": the second abstract
    assert found.missing == pytest.approx(4 / 11) and found.coverage == pytest.approx(5 / 11)
    assert found.rarest_missing == pytest.approx(0.5) and found.unknown == pytest.approx(4 / 11) and not found.follow_up
    # Context concepts count at their formulation's weight, and make it a follow-up.
    chat = evidence(
        0.6, question, [Concept("molecules", ("molecul",), 0.5)], {**idf, "molecul": 2.0}, documents, set(), 8.0
    )
    assert chat.follow_up and chat.missing == pytest.approx(4 / 12)  # "molecules" (weight 0.5 x 2.0) is covered


def test_gate_model_is_a_logistic_function_of_the_features():
    model = GateModel({"similarity": 2.0, "missing": -4.0}, -0.5)
    assert model.probability({"similarity": 0.25, "missing": 0.0}) == pytest.approx(0.5)
    assert model.probability({"similarity": 0.25, "missing": 1.0}) == pytest.approx(1 / (1 + math.exp(4)))


def test_nothing_relevant_names_what_is_missing_and_the_closest_papers():
    class Closest:
        rank, title = 1, "MMGP: mesh morphing"

    text = nothing_relevant(["road traffic"], ["graph neural networks"], [Closest()])
    assert text == (
        "No paper here covers \u201croad traffic\u201d; "
        "the closest papers match only \u201cgraph neural networks\u201d: [1] MMGP: mesh morphing."
    )
    assert nothing_relevant([], [], []).startswith("Nothing relevant")


def test_a_sentence_scores_the_same_in_every_process_so_ties_break_the_same_way():
    """Weights added in a set's order summed to 0.6000000000000001 in some processes and 0.6 in others, so a tie
    with a sentence worth 0.6 fell either way and a query's snippet changed from one run to the next."""
    import subprocess
    import sys

    script = (
        "from paperchat.snippets import choose_sentences; from paperchat.index.tokenize import Tokenizer; "
        "w = {'alpha': 0.1, 'beta': 0.2, 'gamma': 0.3, 'delta': 0.6}; "
        "print(choose_sentences(['delta here.', 'alpha beta gamma here.'], set(w), Tokenizer(stem=False), w, 1))"
    )
    chosen = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in range(12)
    }
    assert chosen == {"[1]"}


@pytest.mark.parametrize("size", [0, 1, 7, 500, 20_000, 300_001])
@pytest.mark.parametrize("k", [1, 10, 100])
@pytest.mark.parametrize("ties", [True, False])
def test_top_positions_equal_a_full_sort_by_score_then_position(size, k, ties):
    """The bound-and-candidates top-k equals sorting everything (ties by position), on arrays with many ties or
    none, half zeros, short ones (exact k-th value) and long ones (block maxima)."""
    rng = np.random.default_rng(size * 1000 + k)
    scores = rng.random(size).astype(np.float32) * 5
    if ties:
        scores = np.round(scores * 4) / 4  # few distinct values
    scores[rng.random(size) < 0.5] = 0
    order = sorted(range(size), key=lambda i: (-scores[i], i))
    assert top_positions(scores, k, positive_only=False).tolist() == order[:k]
    assert top_positions(scores, k).tolist() == [i for i in order[:k] if scores[i] > 0]
    if size >= k:
        assert kth_lower_bound(scores, k) <= scores[order[k - 1]]
    rare = np.where(rng.random(size) < 0.0001, scores, 0).astype(np.float32)  # a rare term: few positive scores
    assert top_positions(rare, k).tolist() == [
        i for i in sorted(range(size), key=lambda i: (-rare[i], i))[:k] if rare[i] > 0
    ]
