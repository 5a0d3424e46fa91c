"""Written answers without a model: prompt and citation parsing, the checker's arithmetic, settings,
and every way an endpoint can fail (real HTTP servers on loopback, tests/endpoints.py)."""

import os
import socket
import subprocess
import sys
import time

import pytest
from endpoints import Endpoint, parts, refused_url, with_llm

from paperchat import PaperchatError, Settings
from paperchat.chat import Answer, written_answer
from paperchat.citations import (
    CheckedSentence,
    Support,
    cited_sentences,
    present_numbers,
    stated_numbers,
    support_score,
    verdict,
)
from paperchat.hits import Citation, Hit
from paperchat.llm import LLM, LLMError, answer_messages, clean_rewrite, content_text

QUESTION = "Is there a training-free way to detect LLM-generated text?"
FOLLOW_UP = ("what about for vision models?", ["pruning large language models"])
HI = [{"role": "user", "content": "hi"}]


def test_sentences_keep_their_markers_and_a_leading_marker_belongs_to_the_sentence_before():
    text = (
        "LoRA trains low-rank matrices [1]. QLoRA quantises to 4 bits [2][3].\n"
        "Both save memory [1, 3]. [4] Merging is cheap.  Uncited end."
    )
    assert cited_sentences(text) == [
        ("LoRA trains low-rank matrices.", [1]),
        ("QLoRA quantises to 4 bits.", [2, 3]),
        ("Both save memory.", [1, 3, 4]),
        ("Merging is cheap.", []),
        ("Uncited end.", []),
    ]
    assert cited_sentences("") == [] and cited_sentences("[1]") == []
    assert cited_sentences("First claim. [1]. Second claim. [2] ") == [("First claim.", [1]), ("Second claim.", [2])]


def test_a_number_the_source_lacks_means_no_support():
    assert support_score(0.9, 0.9, 1) == 0.0 and support_score(0.9, 0.9, 0) > 0.9 and support_score(0.3, 0.2, 0) < 0.05


def test_stated_numbers_skip_names_and_present_numbers_read_scraped_text_leniently():
    assert stated_numbers("after five iterations, twice as fast, one model") == {"5", "2"}
    assert stated_numbers(
        "GPT-4o and Llama-3.1-405B reach 62% vs 53.6%, ~2.6B params, 400x faster on 1,000 samples"
    ) == {"62", "53.6", "2.6", "400", "1000"}
    assert {"53.6", "2", "1000"} <= present_numbers("outperforming RFT (53. 6\\%) with (sim2%) extra and 1,000 samples")


def _support(source: int, score: float) -> Support:
    return Support(source, 0.0, 0.0, (), score)


def test_verdict_flags_a_weak_citation_and_names_the_source_that_supports_it():
    assert verdict([1], [_support(1, 0.9), _support(2, 0.1)]) == (True, 0.9, None)
    assert verdict([2], [_support(1, 0.9), _support(2, 0.1)]) == (False, 0.1, 1)  # swapped: [1] supports it
    assert verdict([1, 2], [_support(1, 0.6), _support(2, 0.1)]) == (True, 0.6, None)  # one of its citations is enough
    assert verdict([], [_support(1, 0.9)]) == (False, 0.0, 1)  # no citation
    assert verdict([1], [_support(1, 0.2), _support(2, 0.3)]) == (False, 0.2, None)  # nothing supports it


def _hit(rank: int, title: str, abstract: str) -> Hit:
    return Hit(rank, f"p{rank}", title, abstract, 1.0, None, None, None, None, Citation(title, ""), abstract)


def test_the_prompt_numbers_the_abstracts_clips_them_and_carries_the_conversation():
    messages = answer_messages(
        "how is it made cheaper?",
        ["low-rank adaptation"],
        [_hit(1, "LoRA", "A " * 2000), _hit(2, "QLoRA", "Four bits.")],
        300,
    )
    system, user = messages[0]["content"], messages[1]["content"]
    assert "[1] or [2][3]" in system and "only the numbers you were given" in system
    assert "[1] LoRA\n" in user and "[2] QLoRA\nFour bits." in user and "- low-rank adaptation" in user
    assert user.endswith("Question: how is it made cheaper?") and len(user) < 900


def test_rewrite_replies_are_cleaned_or_refused():
    assert clean_rewrite('Query: "pruning vision transformers"\nbecause...') == "pruning vision transformers"
    assert clean_rewrite("   \n") is None and clean_rewrite(" ".join(["word"] * 40)) is None


def test_a_written_answer_is_shown_only_when_most_of_it_is_supported_else_it_is_withheld():
    extractive = Answer("q", "q", False, True, "Extractive sentence [1].", [])
    good = CheckedSentence("Supported.", [1], [7], True, 0.9)
    bad = CheckedSentence("Unsupported.", [2], [], False, 0.1, 1)
    written = written_answer(extractive, [good, good, bad], "m at u")  # two thirds: the default threshold
    assert written.text == "Supported. [1] Supported. [1] Unsupported. [2]" and written.written_by == "m at u"
    assert any("[7]" in n for n in written.notices) and any("1 of 3 sentences" in n for n in written.notices)
    assert written.withheld == ""
    half = written_answer(extractive, [good, bad], "m at u")
    assert half.text == "Extractive sentence [1]." and half.written_by is None
    assert half.withheld == "Supported. [1] Unsupported. [2]" and half.to_dict()["withheld"] == half.withheld
    assert "Only 1 of the 2 sentences" in half.notices[-1] and "67%: min_supported" in half.notices[-1]
    assert written_answer(extractive, [good, bad], "m at u", min_supported=0.5).written_by == "m at u"
    refused = written_answer(extractive, [bad], "m at u", min_supported=0.0)
    assert (
        refused.text == "Extractive sentence [1]."
        and refused.written_by is None
        and "None of the sentences" in refused.notices[-1]
        and "showing the extractive answer" in refused.notices[-1]
    )
    assert refused.to_dict()["sentences"][0]["supported"] is False
    from paperchat.ui.render import reply_markdown

    assert "<details>" in reply_markdown(half) and "<details>" not in reply_markdown(written)


def test_llm_settings_are_validated_and_the_key_never_shows(monkeypatch):
    monkeypatch.setenv("PAPERCHAT_LLM_API_KEY", "sk-very-secret")
    settings = Settings.load(llm_url="http://127.0.0.1:11434/v1/")
    assert settings.llm_url == "http://127.0.0.1:11434/v1" and "sk-very-secret" not in repr(settings)
    assert settings.llm_api_key.get_secret_value() == "sk-very-secret"
    with pytest.raises(PaperchatError, match="http:// or https://"):
        Settings.load(llm_url="file:///etc/passwd")
    with pytest.raises(PaperchatError, match=r"llm_api_key .*\(hidden\)"):
        Settings.load(llm_api_key=12345)
    assert Settings.load().llm_url is None


def test_a_working_endpoint_streams_and_gets_the_key_in_the_header_only():
    endpoint = Endpoint("ok")
    try:
        llm = LLM(endpoint.url, api_key="sk-secret", timeout=5)
        assert list(llm.stream([{"role": "user", "content": "hi"}])) == ["LoRA trains low-rank ", "matrices [1]. "]
        paths = [path for path, _, _ in endpoint.requests]
        assert paths == ["/v1/models", "/v1/chat/completions"]  # no model named: the first one listed is used
        headers, body = endpoint.requests[1][1], endpoint.requests[1][2]
        assert (
            headers["Authorization"] == "Bearer sk-secret" and body["model"] == "test-model" and body["stream"] is True
        )
        assert "sk-secret" not in str(body)
    finally:
        endpoint.close()


@pytest.mark.parametrize(
    "behaviour, reason",
    [
        ("hang", "no reply from .* within 1 s"),
        ("unauthorized", "HTTP 401 .*PAPERCHAT_LLM_API_KEY"),
        ("garbage", "malformed stream event"),
        ("empty", "empty answer"),
        ("dies", "ended mid-answer"),
    ],
)
def test_every_endpoint_failure_is_one_line(behaviour, reason):
    endpoint = Endpoint(behaviour)
    try:
        llm = LLM(endpoint.url, model="m", timeout=1)
        with pytest.raises(LLMError, match=reason) as caught:
            list(llm.stream([{"role": "user", "content": "hi"}]))
        assert "\n" not in str(caught.value)
    finally:
        endpoint.close()


def test_a_refused_connection_is_one_line():
    with pytest.raises(LLMError, match="failed|cannot reach"):
        list(LLM(refused_url(), model="m", timeout=2).stream([{"role": "user", "content": "hi"}]))


def test_an_llm_configured_but_unreachable_connects_and_none_configured_connects_nowhere(assistant, monkeypatch):
    connections = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(
        socket.socket, "connect", lambda self, address: connections.append(address) or real_connect(self, address)
    )
    unreachable = refused_url()
    answer = with_llm(assistant, unreachable, llm_timeout=2).ask(QUESTION, k=3)
    assert answer.written_by is None and answer.notices[-1].startswith("No written answer:")
    port = int(unreachable.rsplit(":", 1)[1].split("/")[0])
    assert ("127.0.0.1", port) in connections  # the recorder sees the attempt when there is one
    connections.clear()
    answer = assistant.ask(QUESTION, k=3)
    assert connections == [] and answer.written_by is None and answer.hits
    assert assistant.llm is None


def test_content_given_as_a_list_of_parts_is_text():
    assert (
        content_text(parts("LoRA [1].")) == "LoRA [1]." and content_text("LoRA") == "LoRA" and content_text(None) == ""
    )
    assert (
        content_text([{"type": "text", "text": "a "}, {"type": "image_url", "image_url": {}}, {"text": "b"}]) == "a b"
    )
    assert (
        content_text(5) is None and content_text(["a"]) is None and content_text([{"type": "text", "text": 5}]) is None
    )
    endpoint = Endpoint("parts")
    try:
        llm = LLM(endpoint.url, model="m", timeout=5)
        assert list(llm.stream(HI)) == ["LoRA trains low-rank ", "matrices [1]. "]
        assert llm.complete(HI) == "LoRA trains low-rank matrices [1]. "
    finally:
        endpoint.close()


def test_models_listed_in_another_shape_is_one_line():
    endpoint = Endpoint("models-malformed")
    try:
        for call in (lambda llm: list(llm.stream(HI)), lambda llm: llm.complete(HI)):
            with pytest.raises(LLMError, match=r"malformed reply from .*/models \('data' is not a list\)"):
                call(LLM(endpoint.url, timeout=5))
    finally:
        endpoint.close()


def test_an_endpoint_that_keeps_the_connection_alive_forever_gives_up_at_the_deadline():
    endpoint = Endpoint("keep-alive")
    try:
        llm = LLM(endpoint.url, model="m", timeout=5, deadline=2)
        for call in (lambda: list(llm.stream(HI)), lambda: llm.complete(HI)):
            started = time.monotonic()
            with pytest.raises(LLMError, match=r"no complete reply from .* within 2 s \(llm_deadline\)"):
                call()
            assert time.monotonic() - started < 2 + 30
    finally:
        endpoint.close()


def test_the_deadline_and_max_tokens_come_from_the_settings(monkeypatch):
    assert Settings.load().llm_deadline == 120
    assert LLM("http://127.0.0.1:1/v1").max_tokens == Settings.load().llm_max_tokens
    monkeypatch.setenv("PAPERCHAT_LLM_DEADLINE", "2.5")
    llm = LLM.from_settings(Settings.load(llm_url="http://127.0.0.1:1/v1", llm_max_tokens=99))
    assert (llm.deadline, llm.max_tokens) == (2.5, 99)
    for bad in ("0", "-1", "nan", "soon"):
        monkeypatch.setenv("PAPERCHAT_LLM_DEADLINE", bad)
        with pytest.raises(PaperchatError, match=r"llm_deadline \(from PAPERCHAT_LLM_DEADLINE\)"):
            Settings.load()
    assert LLM.from_settings(Settings.load(llm_deadline=3)) is None  # no url: no client, however it is set


def test_a_reply_as_a_list_of_parts_is_streamed_and_rewritten_as_text(assistant):
    endpoint = Endpoint("parts", pieces=("pruning vision transformers",))
    try:
        writer = with_llm(assistant, endpoint.url)
        answer = writer.ask(*FOLLOW_UP, k=3)
        assert {"text": "pruning vision transformers", "weight": 0.5, "role": "llm rewrite"} in [
            vars(f) for f in answer.searched
        ]
        tokens = [event.token for event in writer.ask_stream(QUESTION, k=3) if event.kind == "token"]
        assert tokens == ["pruning vision transformers"]
    finally:
        endpoint.close()


@pytest.mark.parametrize("behaviour", ["models-malformed", "keep-alive"])
def test_a_reply_of_another_shape_or_without_end_falls_back_in_the_api(assistant, behaviour):
    endpoint = Endpoint(behaviour)
    try:
        started = time.monotonic()
        answer = with_llm(assistant, endpoint.url, llm_deadline=2, llm_timeout=5).ask(*FOLLOW_UP, k=3)
        assert time.monotonic() - started < 2 * 2 + 30  # the rewrite and the answer each stop at the deadline
        assert answer.written_by is None and answer.hits and answer.text.endswith("]")
        assert answer.notices[0].startswith("The follow-up was rewritten by rule, not by the model:")
        assert answer.notices[-1].startswith("No written answer:") and answer.notices[-1].endswith(
            "showing the extractive answer."
        )
        assert {"text": "pruning vision models", "weight": 0.5, "role": "rewrite"} in [vars(f) for f in answer.searched]
    finally:
        endpoint.close()


def test_paperchat_ask_falls_back_when_the_models_list_has_another_shape(bundled_index):
    endpoint = Endpoint("models-malformed")
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "paperchat.cli",
                "ask",
                QUESTION,
                "-k",
                "3",
                "--index",
                str(bundled_index),
                "--quiet",
                "--llm-url",
                endpoint.url,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ),
        )
    finally:
        endpoint.close()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert (
        "paperchat: No written answer: malformed reply from" in done.stderr
        and "showing the extractive answer." in done.stderr
    )
    assert " 1. " in done.stdout
