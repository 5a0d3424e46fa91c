"""Saved questions and the digest of new papers: kept beside the index, judged against the whole index."""

import json
import xml.etree.ElementTree as ET

import pytest

from conftest import small_assistant, write
from paperchat.cli import main
from paperchat.hits import Citation, Hit
from paperchat.index.errors import PaperchatError
from paperchat.index.loaders import load_bundled
from paperchat.watch import Watchlist, digest_text, listed_hits

PAPERS = load_bundled()[0]
UNLEARNING = "machine unlearning: removing data or knowledge from trained models"


def jsonl(path, papers, date):
    lines = [json.dumps({"id": p.id, "title": p.title, "abstract": p.abstract, "date": date}) for p in papers]
    return write(path, "\n".join(lines) + "\n")


def test_saved_questions_are_a_small_file_beside_the_index_and_bad_ones_are_refused(tmp_path):
    watchlist = Watchlist(tmp_path)
    watchlist.add("  efficient   fine-tuning ", {"since": "2024", "author": None}, ["a", "b"])
    assert [(w.question, w.filters) for w in watchlist.questions()] == [("efficient fine-tuning", {"since": "2024"})]
    assert watchlist.seen() == {"a", "b"} and watchlist.last_digest() is None  # the first question marks what is there
    watchlist.add("diffusion distillation", {}, ["a", "b", "c"])
    assert watchlist.seen() == {"a", "b"}  # only the first question marks
    with pytest.raises(PaperchatError, match="already saved"):
        watchlist.add("efficient fine-tuning", {"since": "2024"}, [])
    with pytest.raises(PaperchatError, match="not a date|date"):
        watchlist.add("x", {"since": "June-ish"}, [])
    assert watchlist.remove(1).question == "efficient fine-tuning" and len(watchlist.questions()) == 1
    with pytest.raises(PaperchatError, match="no saved question 5"):
        watchlist.remove(5)
    (tmp_path / "watch.json").write_text("{broken")
    with pytest.raises(PaperchatError, match="unreadable saved questions"):
        watchlist.questions()


def unlearning_papers():
    return [p for p in PAPERS if "unlearning" in p.title.lower()]


def test_a_digest_lists_the_new_papers_that_answer_a_saved_question_once(tmp_path, embedder, capsys):
    relevant = unlearning_papers()
    assert len(relevant) >= 3
    others = [p for p in PAPERS if p not in relevant]
    assistant = small_assistant(
        tmp_path / "index", embedder, jsonl(tmp_path / "base.jsonl", others[:40] + relevant[:1], "2023-05")
    )
    assistant.watch(UNLEARNING)
    assistant.watch("quantum error correction codes")  # nothing here answers it
    page = relevant[1:3] + others[40:48]
    assistant.ingest([jsonl(tmp_path / "page.jsonl", page, "2025-01-02")], progress=False)
    entries = assistant.digest()
    listed = {p.hit.id for p in entries[0].papers}
    assert listed <= {p.id for p in page} and entries[0].papers[0].hit.id in {p.id for p in relevant[1:3]}
    assert [p.score for p in entries[0].papers] == sorted((p.score for p in entries[0].papers), reverse=True)
    assert entries[1].papers == []
    record = json.loads(digest_text(entries, "json"))
    assert record[0]["question"] == UNLEARNING and record[0]["papers"][0]["title"] in {p.title for p in relevant}
    assert record[0]["papers"][0]["evidence"] in record[0]["papers"][0]["title"] + " " + next(
        p.abstract for p in relevant if p.title == record[0]["papers"][0]["title"]
    )
    assert assistant.watchlist.last_digest() is not None
    assert all(entry.papers == [] for entry in assistant.digest())  # seen: the next digest lists them no more
    assert {p.hit.id for p in assistant.digest(since="2025", mark=False)[0].papers} == listed  # by date instead
    index = str(tmp_path / "index")
    assert main(["digest", "--since", "2025", "--format", "atom", "--index", index]) == 0
    feed = ET.fromstring(capsys.readouterr().out)
    entries_xml = feed.findall("{http://www.w3.org/2005/Atom}entry")
    assert entries_xml and entries_xml[0].find("{http://www.w3.org/2005/Atom}category").get("term") == UNLEARNING
    assert main(["watch", "list", "--index", index]) == 0
    assert capsys.readouterr().out.startswith(f"1. {UNLEARNING}\n2. quantum")
    assert main(["watch", "remove", "7", "--index", index]) == 2
    assert "no saved question 7" in capsys.readouterr().err


def test_a_new_paper_is_listed_when_the_whole_index_ranks_it_near_the_best_paper():
    def ranked(*scores):
        return [
            Hit(n, f"p{n}", "", "", score, None, None, None, None, Citation("", ""))
            for n, score in enumerate(scores, start=1)
        ]

    hits = ranked(2.0, 1.5, 0.7, 0.59, 0.5)
    assert [(h.id, share) for h, share in listed_hits(hits, {"p2", "p3", "p4", "p9"})] == [("p2", 0.75), ("p3", 0.35)]
    assert [h.id for h, _ in listed_hits(hits, {"p1", "p5"}, near_top=0.25)] == ["p1", "p5"]
    assert listed_hits(ranked(-0.1, -0.2), {"p1", "p2"}) == [] and listed_hits([], {"p1"}) == []
