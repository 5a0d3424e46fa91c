import json

import pytest

from conftest import SEEDS, write
from paperchat.index.errors import PaperchatError
from paperchat.index.loaders import bundled_pages, load_bundled, load_paths, parse_pages
from paperchat.index.papers import code_links, normalise_title, title_id


def test_bundled_corpus_has_472_entries_and_380_unique_papers():
    papers, report = load_bundled()
    assert len(bundled_pages()) == 5
    assert report.entries == 472
    assert report.papers == len(papers) == 380
    assert report.duplicates == 92
    assert report.problems == []
    assert len({p.id for p in papers}) == 380


def test_every_title_on_every_page_is_present():
    papers, _ = load_bundled()
    loaded = {normalise_title(p.title) for p in papers}
    for page in SEEDS.glob("*.txt"):
        lines = [line.strip() for line in page.read_text(encoding="utf-8").splitlines() if line.strip()]
        date_at = next(i for i, line in enumerate(lines) if line in ("Jun 6", "Apr 25", "Mar 11", "Jul 31", "May 8"))
        titles = lines[date_at + 1 :: 2]
        assert titles and all(normalise_title(t) in loaded for t in titles)


def test_a_paper_on_several_pages_keeps_every_page_and_date():
    papers, _ = load_bundled()
    lastde = next(p for p in papers if p.title.startswith("Training-free LLM-generated Text Detection"))
    assert lastde.pages == [
        "HF Daily Papers, Jun 6",
        "HF Daily Papers, May 8",
    ]  # how a reader knows the listings, not file names
    assert lastde.dates == ["Jun 6", "May 8"]
    assert lastde.id == "training-free-llm-generated-text-detection-by-mining-token-probability-sequences"
    assert "arxiv.org" in lastde.url


def test_ids_are_stable_and_long_titles_are_hashed():
    assert (
        title_id("PDP: Parameter-free Differentiable Pruning is All You Need")
        == "pdp-parameter-free-differentiable-pruning-is-all-you-need"
    )
    long = title_id("A " * 100 + "title")
    assert len(long) <= 80 and long == title_id("a " * 100 + "TITLE")


def test_code_links_with_and_without_scheme():
    text = (
        "Code: https://github.com/Peiyannn/MM-PDE.git. Also see github.com/apple/corenet, and https://foo.github.io/x."
    )
    assert code_links(text) == ["https://github.com/Peiyannn/MM-PDE", "https://github.com/apple/corenet"]


def test_page_with_missing_abstract_and_stray_abstract_is_reported_with_line_numbers(tmp_path):
    page = (
        "new\n\nDaily Papers\n\nJun 6\n\nGood Title\n\n"
        + "A" * 500
        + "\n\nTitle Without Abstract\n\nNext Title\n\n"
        + "B" * 500
        + "\n\n"
        + "C" * 600
        + "\n"
    )
    problems = []
    papers = list(parse_pages(page, str(tmp_path / "p.txt"), problems))
    assert [p.title for p in papers] == ["Good Title", "Next Title"]
    assert [(p.line, "without an abstract" in p.message or "expected a title" in p.message) for p in problems] == [
        (11, True),
        (17, True),
    ]


def test_page_without_date_line_is_reported(tmp_path):
    path = write(tmp_path / "x.txt", "just some text\n\nno date here\n")
    papers, report = load_paths([path])
    assert papers == [] and "no date line" in report.problems[0].message


def test_jsonl_keeps_given_ids_and_reports_bad_lines(tmp_path):
    lines = [
        json.dumps({"id": "p1", "title": "One", "abstract": "First abstract."}),
        "{not json",
        json.dumps({"title": "No abstract"}),
        json.dumps(
            {"_id": "p2", "title": "Two", "text": "Second abstract.", "url": "https://x.org/2", "date": "2024-01-01"}
        ),
        json.dumps(["a", "list"]),
    ]
    path = write(tmp_path / "c.jsonl", "\n".join(lines) + "\n")
    papers, report = load_paths([path])
    assert [p.id for p in papers] == ["p1", "p2"]
    assert papers[1].url == "https://x.org/2" and papers[1].dates == ["2024-01-01"]
    assert [p.line for p in report.problems] == [2, 3, 5]
    assert "c.jsonl:2: not valid JSON" in str(report.problems[0])


def test_csv_with_text_column_and_bad_header(tmp_path):
    good = write(tmp_path / "good.csv", 'title,text,id\n"A, with comma","Abstract A.",a1\nB,,b1\nC,"Abstract C.",\n')
    bad = write(tmp_path / "bad.csv", "name,body2\nx,y\n")
    papers, report = load_paths([good, bad])
    assert [p.id for p in papers] == ["a1", "c"]
    assert papers[0].title == "A, with comma"
    assert any(p.line == 3 for p in report.problems)
    assert any("no abstract column" in p.message for p in report.problems)


def test_beir_folder_keeps_source_ids(tmp_path):
    write(
        tmp_path / "beir" / "corpus.jsonl", json.dumps({"_id": "12", "title": "", "text": "flow over a wing ."}) + "\n"
    )
    papers, _ = load_paths([tmp_path / "beir"])
    assert papers[0].id == "12" and papers[0].abstract == "flow over a wing ."


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(PaperchatError, match="no such file"):
        load_paths([tmp_path / "nope.jsonl"])


def test_invalid_utf8_is_reported_and_good_entries_kept(tmp_path):
    path = write(tmp_path / "c.jsonl", b'{"title": "Good", "abstract": "ok"}\n{"title": "Bad \xff", "abstract": "x"}\n')
    papers, report = load_paths([path])
    assert len(papers) == 2 and report.problems[0].line == 2 and "UTF-8" in report.problems[0].message
