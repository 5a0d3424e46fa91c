"""The Gradio app served for real on loopback: the named API through gradio_client, and a real browser."""

import json
import os
import shutil
import socket

import pytest

from paperchat.ui.app import build_app, launch

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(assistant):
    port = free_port()
    app = launch(assistant, host="127.0.0.1", port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def test_search_endpoint_returns_hits_as_json(client):
    result = client.predict("is there a training-free way to detect LLM-generated text?", 3, "hybrid", api_name="/search")
    top = result["hits"][0]
    assert top["id"] == "training-free-llm-generated-text-detection-by-mining-token-probability-sequences"
    assert top["citation"]["url"].startswith("https://arxiv.org/") and top["citation"]["pages"]
    assert result["relevant"] is True and len(result["hits"]) == 3


def test_chat_endpoint_answers_follow_ups_with_citations(client):
    reply = client.predict("what about for vision models?", json.dumps(["pruning large language models"]), 3, "hybrid", api_name="/chat")
    assert reply["rewritten"] is True and reply["searched"][2] == {"text": "pruning vision models", "weight": 0.5, "role": "rewrite"}
    assert "[1]" in reply["answer"] and len(reply["hits"]) == 3


def test_chat_endpoint_says_nothing_relevant_for_off_topic(client):
    reply = client.predict("best pizza dough recipe", "[]", 3, "hybrid", api_name="/chat")
    assert reply["relevant"] is False and reply["hits"] == [] and reply["answer"].startswith("No paper here covers") and reply["missing"]


def test_bad_input_through_the_api_is_a_message_not_a_crash(client):
    assert "empty" in client.predict("   ", 3, "hybrid", api_name="/search")["error"]
    assert "mode" in client.predict("lora", 3, "fuzzy", api_name="/search")["error"]


def test_only_the_two_named_endpoints_are_public(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/search", "/chat"}


def test_build_app_has_no_file_access(assistant):
    app = build_app(assistant)
    assert not getattr(app, "allowed_paths", None)


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("PAPERCHAT_REQUIRE_BROWSER"), reason="needs Chromium: apt-get install -y chromium")
def test_real_browser_asks_a_question_and_clicks_an_example(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM, "PAPERCHAT_REQUIRE_BROWSER is set but Chromium is not installed"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server, wait_until="domcontentloaded")
        question = page.locator("#question textarea")
        question.wait_for(timeout=60_000)
        question.fill("Is there a training-free way to detect LLM-generated text?")
        page.locator("#ask").click()
        chat = page.locator("#chat")
        expect(chat).to_contain_text("[1]", timeout=60_000)
        expect(page.locator("#sources")).to_contain_text("Training-free LLM-generated Text Detection", timeout=60_000)
        page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)
        assert (tmp_path / "answer.png").stat().st_size > 10_000

        page.get_by_text("pruning large language models", exact=True).first.click()
        expect(question).to_have_value("pruning large language models", timeout=10_000)
        page.locator("#ask").click()
        expect(page.locator("#sources")).to_contain_text("Prun", timeout=60_000)
        page.locator("#question textarea").fill("What about for vision transformers?")
        page.locator("#ask").click()
        expect(chat).to_contain_text("Searched:", timeout=60_000)
        expect(chat).to_contain_text("pruning vision transformers' x0.5", timeout=60_000)
        browser.close()
