"""Follow-ups that point back ("what about doing that for video?", "can the same be done during pretraining?") keep
the previous question's action and object in what is searched; the message replaces only what it names."""

import numpy as np
import pytest

from paperchat.chat import (
    CONTEXT_WEIGHT,
    POINTER_WEIGHTS,
    REWRITE_WEIGHT,
    Formulation,
    formulations,
    is_follow_up,
    points_back,
    rewrite_follow_up,
)
from paperchat.fusion import CONTEXT_FLOOR, CONTEXT_NEAR, context_share
from paperchat.search import searched_weights

DIFFUSION = "How can diffusion models be sampled in fewer steps?"
LORA = "How is low-rank adaptation used to fine-tune large models cheaply?"


def searched(message: str, previous: str) -> list[str]:
    """The texts searched for `message` other than the previous question itself."""
    return [f.text for f in formulations(message, previous) if f.role != "context"]


def test_doing_that_for_a_new_domain_keeps_the_action():
    rewrite = rewrite_follow_up("what about doing that for video?", DIFFUSION)
    assert "fewer steps" in rewrite and "sampled" in rewrite and "diffusion models" in rewrite and "video" in rewrite
    assert any(
        "fewer steps" in text and "video" in text for text in searched("what about doing that for video?", DIFFUSION)
    )


def test_doing_that_at_another_stage_keeps_the_method():
    rewrite = rewrite_follow_up("what about doing that during pretraining?", LORA)
    assert "low-rank adaptation" in rewrite and "pretraining" in rewrite
    assert any(
        "low-rank adaptation" in text and "pretraining" in text
        for text in searched("what about doing that during pretraining?", LORA)
    )


@pytest.mark.parametrize(
    "message",
    [
        "can the same be done for video?",
        "does that work for video too?",
        "how well does it work on video?",
        "has anyone tried those on video?",
        "what about applying it to video?",
        "and could the same idea help with video?",
    ],
)
def test_every_way_of_pointing_back_keeps_the_whole_topic(message):
    assert points_back(message) and is_follow_up(message)
    rewrite = rewrite_follow_up(message, DIFFUSION)
    assert all(words in rewrite for words in ("diffusion models", "sampled", "fewer steps", "video"))


@pytest.mark.parametrize(
    "message, previous, kept",
    [
        ("any benchmarks for that?", "detecting text written by LLMs", "detecting text written LLMs"),
        ("how do you recover the accuracy lost by that?", "structured pruning of LLMs", "structured pruning LLMs"),
        ("what's known about their sample complexity?", "pessimism-based offline RL methods", "offline RL"),
        ("can it be done without calibration data?", "post-training quantization of LLMs", "quantization LLMs"),
    ],
)
def test_an_aspect_or_variant_of_what_was_asked_keeps_it(message, previous, kept):
    assert points_back(message)
    assert kept in rewrite_follow_up(message, previous)


def test_instead_of_rules_out_a_word_and_replaces_nothing_else():
    previous = "How do people choose merging coefficients when combining fine-tuned models?"
    rewrite = rewrite_follow_up("can that be automated instead of hand-tuned?", previous)
    assert "merging coefficients" in rewrite and "combining fine-tuned models" in rewrite and "automated" in rewrite
    assert not any("hand-tuned" in text for text in searched("can that be automated instead of hand-tuned?", previous))


def test_a_narrowing_that_rules_something_out_is_a_follow_up_with_the_topic():
    message, previous = "applied to speech rather than images", "self-supervised contrastive learning"
    assert is_follow_up(message)
    texts = searched(message, previous)
    assert texts[0] == "applied to speech"
    assert "self-supervised contrastive learning" in texts[1] and "speech" in texts[1]
    assert not any("images" in text for text in texts)


def test_a_substitution_without_pointer_still_replaces_a_chunk():
    assert rewrite_follow_up("what about for vision models?", "pruning large language models") == (
        "pruning vision models"
    )
    assert rewrite_follow_up("how about prefix tuning instead", "LoRA") == "LoRA prefix tuning"
    # the 'that' of "more like that but" belongs to the cue: copyright replaces privacy
    assert rewrite_follow_up("more like that but about copyright", "privacy in machine learning") == (
        "machine learning copyright"
    )
    # an explicit 'instead' still replaces, pointer or not
    assert "math" not in rewrite_follow_up(
        "has anyone tried that on vision tasks instead?", "rl with rule-based rewards for math reasoning"
    )


@pytest.mark.parametrize(
    "message",
    ["diffusion models for image generation", "what about video models that need many more frames?", "and for code?"],
)
def test_what_does_not_point_back(message):
    assert not points_back(message)


def test_a_bare_pointer_counts_its_rewrite_most():
    assert formulations("what about doing that for video?", DIFFUSION) == [
        Formulation("what about doing that for video?", POINTER_WEIGHTS[0]),
        Formulation(DIFFUSION, POINTER_WEIGHTS[1], "context"),
        Formulation("diffusion models sampled fewer steps video", POINTER_WEIGHTS[2], "rewrite"),
    ]
    assert POINTER_WEIGHTS[2] > POINTER_WEIGHTS[0]
    # a message that says enough on its own is still searched mostly as itself
    weights = [f.weight for f in formulations("do those edits wreck the model's general abilities over time?", LORA)]
    assert weights == [1.0, CONTEXT_WEIGHT, REWRITE_WEIGHT]


VIDEO_LLMS = {
    "video-panda-parameter-efficient-alignment-for-encoder-free-video-language-models",
    "pllava-parameter-free-llava-extension-from-images-to-videos-for-video-d-3dd99816",
    "ts-llava-constructing-visual-tokens-through-thumbnail-and-sampling-for-5729de40",
    "interpolating-video-llms-toward-longer-sequence-lmms-in-a-training-free-manner",
}
# The corpus has no video diffusion paper: the papers on sampling diffusion models in fewer steps answer it.
FEW_STEP_DIFFUSION = {
    "fast-sampling-of-diffusion-models-with-exponential-integrator",
    "adaptive-guidance-training-free-acceleration-of-conditional-diffusion-models",
    "sana-sprint-one-step-diffusion-with-continuous-time-consistency-distillation",
    "a-sdm-accelerating-stable-diffusion-through-model-assembly-and-feature-7ca85c05",
    "efficient-distillation-of-classifier-free-guidance-using-adapters",
    "masked-diffusion-models-are-secretly-time-agnostic-masked-models-and-ex-2f49a3bf",
    "generative-modeling-with-explicit-memory",
}


def test_doing_that_for_video_finds_few_step_diffusion_not_video_llms(assistant):
    hits = assistant.search("what about doing that for video?", k=5, history=[DIFFUSION])
    assert hits[0].id in FEW_STEP_DIFFUSION
    assert not VIDEO_LLMS & {h.id for h in hits}


def test_context_share_fades_only_when_the_message_is_close_to_the_context():
    start, end = CONTEXT_NEAR
    assert context_share(-0.1) == context_share(0.0) == context_share(start) == 1.0
    assert context_share(end) == pytest.approx(CONTEXT_FLOOR) == context_share(0.9)
    assert context_share((start + end) / 2) == pytest.approx((1 + CONTEXT_FLOOR) / 2)
    shares = [context_share(c) for c in np.linspace(-0.2, 1.0, 25)]
    assert all(a >= b for a, b in zip(shares, shares[1:]))


def test_searched_weights_scale_the_context_alone():
    searched = [Formulation("message", 1.0), Formulation("previous", 0.7, "context"), Formulation("rw", 0.5, "rewrite")]
    far = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    near = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    assert searched_weights(searched, far) == [1.0, 0.7, 0.5]
    assert searched_weights(searched, near) == pytest.approx([1.0, 0.7 * context_share(0.6), 0.5])
    assert searched_weights(searched, None) == [1.0, 0.7, 0.5]  # bm25 mode: not embedded


SPARSIFY = "how do people merge several fine-tuned models into one without retraining?"


def test_a_sibling_question_is_searched_with_less_context_than_a_bare_aspect(assistant):
    def context_weights(message):
        """The context's weight as `formulations` gives it and as it is searched."""
        searched = formulations(message, SPARSIFY)
        vectors = assistant.searcher._formulation_vectors(searched)
        at = [f.role for f in searched].index("context")
        return searched[at].weight, searched_weights(searched, vectors)[at]

    given, used = context_weights("what if you prune the fine-tuning deltas before merging them?")
    assert used < given / 2
    given, used = context_weights("where do they typically fail?")
    assert used == pytest.approx(given)
