"""The Gradio app served for real on loopback: the named API through gradio_client, and a real browser."""

import json
import os
import shutil

import pytest

from conftest import small_assistant
from paperchat.eval.bench import free_port
from paperchat.ui.app import launch

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("PAPERCHAT_REQUIRE_BROWSER"),
    reason="needs Chromium: apt-get install -y chromium",
)


@pytest.fixture
def browser():
    """A real Chromium, offline: nothing in the background may reach the network."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "PAPERCHAT_REQUIRE_BROWSER is set but Chromium is not installed"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def open_chat(browser, url: str, **options):
    """A new tab on the chat page, once the question box is there (a Gradio page never goes network-idle offline)."""
    page = browser.new_page(**{"viewport": {"width": 1400, "height": 1000}, **options})
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#question textarea").wait_for(timeout=60_000)
    return page


@pytest.fixture(scope="module")
def launched(assistant):
    port = free_port()
    app = launch(assistant, host="127.0.0.1", port=port, block=False)
    yield app, f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="module")
def server(launched):
    return launched[1]


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def test_search_endpoint_returns_hits_as_json(client):
    result = client.predict(
        "is there a training-free way to detect LLM-generated text?", 3, "hybrid", api_name="/search"
    )
    top = result["hits"][0]
    assert top["id"] == "training-free-llm-generated-text-detection-by-mining-token-probability-sequences"
    assert top["citation"]["url"].startswith("https://arxiv.org/") and top["citation"]["pages"]
    assert result["relevant"] is True and len(result["hits"]) == 3


def test_chat_endpoint_answers_follow_ups_with_citations(client):
    reply = client.predict(
        "what about for vision models?", json.dumps(["pruning large language models"]), 3, "hybrid", api_name="/chat"
    )
    assert reply["rewritten"] is True and reply["searched"][2] == {
        "text": "pruning vision models",
        "weight": 0.5,
        "role": "rewrite",
    }
    assert "[1]" in reply["answer"] and len(reply["hits"]) == 3


def test_chat_endpoint_says_nothing_relevant_for_off_topic(client):
    reply = client.predict("best pizza dough recipe", "[]", 3, "hybrid", api_name="/chat")
    assert (
        reply["relevant"] is False
        and reply["hits"] == []
        and reply["answer"].startswith("No paper here covers")
        and reply["missing"]
    )


def test_bad_input_through_the_api_is_a_message_not_a_crash(client):
    assert "empty" in client.predict("   ", 3, "hybrid", api_name="/search")["error"]
    assert "mode" in client.predict("lora", 3, "fuzzy", api_name="/search")["error"]


def test_only_the_two_named_endpoints_are_public(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/search", "/chat"}


def test_the_served_app_allows_no_file_paths_and_blocks_the_index(launched, assistant):
    app, _ = launched
    assert app.allowed_paths == [] and not app.share
    assert str(assistant.settings.index) in app.blocked_paths and str(assistant.settings.cache_dir) in app.blocked_paths


@needs_chromium
def test_real_browser_asks_a_question_and_clicks_an_example(server, tmp_path, browser):
    from playwright.sync_api import expect

    page = open_chat(browser, server)
    question = page.locator("#question textarea")
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


HOSTILE = {
    "id": "hostile",
    "title": (
        "Prompt injection ](javascript:window.__pwned=1) <script>window.__pwned=2</script> "
        "<img src=x onerror='window.__pwned=3'>"
    ),
    "abstract": (
        "We study prompt injection against retrieval assistants. ![tracker]({tracker}/pixel.png) "
        "<script>window.__pwned=4</script> "
        "<img src={tracker}/img.png onerror='window.__pwned=5'> [click](javascript:window.__pwned=6). "
        "Prompt injection hides instructions in data."
    ),
    "url": "javascript:window.__pwned=7",
    "code_links": ["javascript:window.__pwned=8"],
}


@pytest.mark.slow
@needs_chromium
def test_a_hostile_record_runs_no_script_loads_nothing_and_links_nowhere(tmp_path, embedder, browser):
    from playwright.sync_api import expect

    tracker = f"http://127.0.0.1:{free_port()}"  # nothing listens: any request to it is recorded below, never answered
    record = {key: value.format(tracker=tracker) if isinstance(value, str) else value for key, value in HOSTILE.items()}
    corpus = tmp_path / "hostile.jsonl"
    corpus.write_text(
        json.dumps(record)
        + "\n"
        + json.dumps({"id": "plain", "title": "Plain paper", "abstract": "About graph rewiring."})
        + "\n"
    )
    assistant = small_assistant(tmp_path / "index", embedder, corpus, min_relevance=0.0)
    port = free_port()
    app = launch(assistant, port=port, block=False)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
        page.locator("#question textarea").fill("prompt injection against retrieval assistants")
        page.locator("#ask").click()
        expect(page.locator("#sources")).to_contain_text("Prompt injection", timeout=60_000)
        expect(page.locator("#chat")).to_contain_text("[1]", timeout=60_000)
        page.locator("#question textarea").fill("compare [1] and [2]")  # the record's text in a table too
        page.locator("#ask").click()
        expect(page.locator("#chat table")).to_contain_text("<script>", timeout=60_000)
        page.wait_for_timeout(1000)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("a[href^='javascript:' i]").count() == 0 and page.locator("[onerror]").count() == 0
        assert not [url for url in requests if url.startswith(tracker)], requests
        assert page.locator("#sources").inner_text().count("<script>") >= 1  # shown as text, not run
    finally:
        app.close()


@needs_chromium
def test_real_browser_sets_a_filter_and_downloads_the_sources_as_bibtex(server, tmp_path, browser):
    import bibtexparser
    from playwright.sync_api import expect

    page = open_chat(browser, server, accept_downloads=True)
    page.locator("#filters").get_by_text("Filters").click()
    page.locator("#filter-source textarea, #filter-source input").first.fill("May 8")
    page.locator("#question textarea").fill("detecting LLM-generated text")
    page.locator("#ask").click()
    expect(page.locator("#active-filter")).to_contain_text("source=May 8", timeout=60_000)
    expect(page.locator("#sources")).to_contain_text("Training-free LLM-generated Text Detection", timeout=60_000)
    cards = page.locator("#sources .source .meta").all_inner_texts()
    assert cards and all("May 8" in card for card in cards)
    with page.expect_download(timeout=60_000) as download:
        page.locator("#download-bibtex").click()
    path = tmp_path / "sources.bib"
    download.value.save_as(path)
    library = bibtexparser.parse_string(path.read_text())
    assert library.entries and library.entries[0].fields_dict["title"].value.startswith(
        "Training-free LLM-generated Text Detection"
    )
    page.locator("#clear-filters").click()
    expect(page.locator("#filter-source textarea, #filter-source input").first).to_have_value("", timeout=10_000)
    expect(page.locator("#active-filter")).to_contain_text("Filter: none", timeout=10_000)


@pytest.mark.slow
@needs_chromium
def test_real_browser_chat_asks_for_a_filter_removes_it_with_one_click_and_points_at_a_shown_paper(server, browser):
    from playwright.sync_api import expect

    page, other = (open_chat(browser, server) for _ in range(2))

    def ask(tab, message: str, answers: int) -> None:
        tab.locator("#question textarea").fill(message)
        tab.locator("#ask").click()
        expect(tab.locator("#chat [data-testid='bot']")).to_have_count(answers, timeout=60_000)

    ask(page, "pruning large language models", 1)
    ask(other, "pruning large language models", 1)
    ask(page, "only the ones with code", 2)
    expect(page.locator("#active-filter")).to_contain_text("has_code=True", timeout=60_000)
    first = page.locator("#sources .source").first.inner_text()
    ask(page, "more like [1]", 3)
    expect(page.locator("#chat")).to_contain_text("more like", timeout=60_000)
    assert first.splitlines()[0].split("] ", 1)[-1][:30] in page.locator("#chat").inner_text()
    page.locator("#clear-filters").click()
    expect(page.locator("#active-filter")).to_contain_text("Filter: none", timeout=10_000)
    ask(page, "what about for vision transformers?", 4)
    expect(page.locator("#active-filter")).to_contain_text("Filter: none", timeout=60_000)
    ask(other, "more like [1]", 2)  # the other tab's conversation has no filter and its own [1]
    expect(other.locator("#active-filter")).to_contain_text("Filter: none", timeout=60_000)


def download_files(upload_folder) -> set:
    """Every sources file on disk: where the web chat writes them, and any copy in Gradio's file folder."""
    import tempfile
    from pathlib import Path

    return {*Path(tempfile.gettempdir()).glob("paperchat-sources-*"), *Path(upload_folder).rglob("paperchat-sources-*")}


def test_download_files_are_replaced_by_each_answer_and_removed_when_the_session_ends(tmp_path, embedder):
    """The chat driven as the browser drives it (queue/join, queue/data, heartbeat): after four answers
    in one session the two current files are all there is, Gradio serves them, and closing the session
    (the heartbeat connection) removes them."""
    import threading
    import time
    import uuid

    import httpx

    topics = {
        "pruning": "Pruning large language models",
        "lora": "LoRA adapters for fine-tuning",
        "detection": "Detecting LLM-generated text",
        "distillation": "Knowledge distillation for code models",
    }
    corpus = tmp_path / "papers.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": key, "title": title, "abstract": f"{title}: a study."}) + "\n"
            for key, title in topics.items()
        )
    )
    assistant = small_assistant(tmp_path / "index", embedder, corpus, min_relevance=0.0)
    port = free_port()
    app = launch(assistant, port=port, block=False)
    server = f"http://127.0.0.1:{port}/"
    try:
        api = f"{server}gradio_api/"
        config = httpx.get(f"{server}config", timeout=30).json()
        ask = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "ask")
        respond = next(d["id"] for d in config["dependencies"] if [ask, "click"] in d["targets"])
        session = uuid.uuid4().hex
        before = download_files(app.GRADIO_CACHE)
        alive, closed = threading.Event(), threading.Event()

        def heartbeat():
            with httpx.stream("GET", f"{api}heartbeat/{session}", timeout=60) as response:
                alive.set()
                for _ in response.iter_lines():
                    if closed.is_set():
                        return

        beating = threading.Thread(target=heartbeat, daemon=True)
        beating.start()
        assert alive.wait(30)
        with httpx.Client(timeout=120) as http:
            for question in topics.values():
                inputs = [question, [], None, 3, "hybrid", "", "", "", "", "", "", False]  # None: the state
                event = http.post(
                    f"{api}queue/join",
                    json={
                        "data": inputs,
                        "fn_index": respond,
                        "trigger_id": ask,
                        "session_hash": session,
                        "event_data": None,
                    },
                ).json()["event_id"]
                with http.stream("GET", f"{api}queue/data", params={"session_hash": session}) as stream:
                    messages = (json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:"))
                    done = next(m for m in messages if m.get("event_id") == event and m["msg"] == "process_completed")
                assert done["success"], done
            current = download_files(app.GRADIO_CACHE) - before
            assert sorted(path.suffix for path in current) == [".bib", ".ris"], current
            bibtex = next(path for path in current if path.suffix == ".bib")
            served = http.get(f"{api}file={bibtex}")
            assert (
                served.status_code == 200
                and served.text == bibtex.read_text()
                and "{Knowledge distillation for code models}" in served.text
            )
        closed.set()
        beating.join(30)
        deadline = time.monotonic() + 60
        while download_files(app.GRADIO_CACHE) - before and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not download_files(app.GRADIO_CACHE) - before
    finally:
        app.close()


@needs_chromium
def test_clicking_a_citation_brings_its_source_into_view_with_the_supporting_sentence_marked(server, browser):
    from playwright.sync_api import expect

    page = open_chat(browser, server, viewport={"width": 1400, "height": 700})
    page.locator("#question textarea").fill("how can diffusion models generate images in fewer steps?")
    page.locator("#ask").click()
    markers = page.locator("#chat a.cite")
    expect(markers.nth(2)).to_be_visible(timeout=60_000)
    expect(page.locator("#sources .sentence.support")).to_have_count(3, timeout=30_000)
    marker = markers.nth(2)
    target = marker.get_attribute("href")  # "#ev-SOURCE-SENTENCE": the sentence of the source it rests on
    assert target.startswith("#ev-3-"), target
    marker.click()
    marked = page.locator("#sources .sentence.active")
    expect(marked).to_have_count(1, timeout=10_000)
    assert marked.get_attribute("id") == target[1:]
    expect(marked).to_be_in_viewport()
    quoted = marked.inner_text().strip()
    assert quoted and quoted in page.locator("#chat").inner_text()  # the sentence the answer quotes
    first = markers.nth(0).get_attribute("href")
    markers.nth(0).click()  # another citation moves the mark
    expect(page.locator("#sources .sentence.active")).to_have_attribute("id", first[1:])


@needs_chromium
def test_real_browser_compares_the_ticked_sources_and_downloads_the_table(server, tmp_path, browser):
    import csv

    from playwright.sync_api import expect

    page = open_chat(browser, server, accept_downloads=True)
    page.locator("#question textarea").fill("pruning large language models")
    page.locator("#ask").click()
    expect(page.locator("#sources .source")).to_have_count(5, timeout=60_000)
    titles = [line.split("] ", 1)[1] for line in page.locator("#sources .source-title").all_inner_texts()]
    page.locator("#compare-box").get_by_text("Compare sources").click()
    pick = page.locator("#compare-pick")
    expect(pick.locator("input[type=checkbox]")).to_have_count(5, timeout=10_000)
    pick.get_by_text("[1] ", exact=False).first.click()
    pick.get_by_text("[3] ", exact=False).first.click()
    page.locator("#compare").click()
    table = page.locator("#chat table")
    expect(table).to_have_count(1, timeout=60_000)
    expect(page.locator("#chat")).to_contain_text("compare [1] and [3]")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2)
    assert rows.nth(0).inner_text().startswith("[1]") and rows.nth(1).inner_text().startswith("[3]")
    assert [h.strip() for h in table.locator("th").all_inner_texts()][:2] == ["paper", "problem"]
    expect(pick.locator("input[type=checkbox]")).to_have_count(5)  # [n] still points into the list asked for
    with page.expect_download(timeout=60_000) as download:
        page.locator("#download-table-csv").click()
    download.value.save_as(tmp_path / "table.csv")
    with open(tmp_path / "table.csv", newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [row["title"] for row in written] == [titles[0], titles[2]]
    assert all(row["problem"] or row["approach"] for row in written)


@needs_chromium
def test_real_browser_watches_a_question_and_the_digest_tab_lists_a_new_paper_that_answers_it(
    tmp_path, embedder, browser
):
    from playwright.sync_api import expect

    from paperchat.index.loaders import load_bundled

    papers = load_bundled()[0]
    unlearning = [p for p in papers if "unlearning" in p.title.lower()]
    others = [p for p in papers if p not in unlearning]

    def page_of(name, chosen):
        rows = [json.dumps({"id": p.id, "title": p.title, "abstract": p.abstract}) for p in chosen]
        (tmp_path / name).write_text("\n".join(rows) + "\n")
        return tmp_path / name

    assistant = small_assistant(tmp_path / "index", embedder, page_of("base.jsonl", others[:40] + unlearning[:1]))
    port = free_port()
    app = launch(assistant, port=port, block=False)
    try:
        page = open_chat(browser, f"http://127.0.0.1:{port}/")
        page.locator("#watch").click()
        expect(page.locator("#watch-status")).to_contain_text("Ask a question first", timeout=30_000)
        page.locator("#question textarea").fill("machine unlearning: removing data or knowledge from trained models")
        page.locator("#ask").click()
        expect(page.locator("#sources")).to_contain_text(unlearning[0].title[:40], timeout=60_000)
        page.locator("#watch").click()
        expect(page.locator("#watch-status")).to_contain_text("Watching", timeout=30_000)
        assistant.ingest([page_of("page.jsonl", unlearning[1:3] + others[40:48])], progress=False)
        page.get_by_role("tab", name="Digest").click()
        expect(page.locator("#saved-questions li")).to_have_text(
            ["machine unlearning: removing data or knowledge from trained models"], timeout=30_000
        )
        page.locator("#make-digest").click()
        digest = page.locator("#digest")
        expect(digest).to_contain_text("machine unlearning", timeout=60_000)
        listed = digest.locator("li").all_inner_texts()
        assert listed and any(p.title[:40] in listed[0] for p in unlearning[1:3]), listed
        assert not any(p.title[:40] in " ".join(listed) for p in others[:40] + unlearning[:1])  # only new papers
        page.locator("#make-digest").click()  # the first digest marked them seen
        expect(digest).to_contain_text("No new paper answers it", timeout=60_000)
        page.locator("#unwatch-number input").fill("1")
        page.locator("#unwatch").click()
        expect(page.locator("#saved-questions")).to_contain_text("No saved questions", timeout=30_000)
    finally:
        app.close()
