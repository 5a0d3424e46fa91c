"""Saved questions that watch for new papers, and the digest of what arrived since the last one.

The questions live beside the index in `watch.json` (small: the questions, their filters, when the last digest
was made); the ids the last digest had seen go in `watch-seen.txt`, one a line. Nothing is stored in Chroma.
A digest searches the whole index for each saved question, as a user asking it would, and lists the new papers that
search shows near the top: a new paper is judged against every paper already there, not alone, best first, with the
sentence of its abstract that matches the question best.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from paperchat.chat import compose_answer, search_terms
from paperchat.filters import Filter
from paperchat.hits import Hit
from paperchat.index.errors import PaperchatError
from paperchat.index.stored import write_text_atomically

if TYPE_CHECKING:
    from paperchat.api import Assistant

WATCH_FILE = "watch.json"
SEEN_FILE = "watch-seen.txt"
DIGEST_FORMATS = ("text", "markdown", "json", "atom")
# A new paper is listed when a search of the whole index for the question (gate on) ranks it in the first DIGEST_RANK
# with a fused score at least DIGEST_NEAR_TOP of the best paper's: chosen on the dev halves of four graded topic sets
# (eval/README.md, issue 24). Judging each new paper alone with the gate listed three to five papers per right one.
DIGEST_RANK = 18
DIGEST_NEAR_TOP = 0.3
DIGEST_DEPTH = 400  # candidates per side: fused scores are normalised over a wider pool than a search's (dev: better)


@dataclass(frozen=True)
class Watched:
    """A saved question and the filter it searches under (`Filter` fields; empty: none)."""

    question: str
    filters: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DigestPaper:
    hit: Hit
    score: float  # its fused score over the best paper's, in a search of the whole index for the question (1: the best)
    evidence: str  # the sentence of its abstract that matches the question best

    def to_dict(self) -> dict:
        return {
            "id": self.hit.id,
            "title": self.hit.title,
            "url": self.hit.citation.url,
            "score": round(self.score, 4),
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class DigestEntry:
    question: str
    filters: dict
    papers: list[DigestPaper]

    def to_dict(self) -> dict:
        return {"question": self.question, "filters": self.filters, "papers": [p.to_dict() for p in self.papers]}


class Watchlist:
    """The saved questions of one index folder, and what its last digest had seen."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / WATCH_FILE
        self.seen_path = Path(folder) / SEEN_FILE

    def _state(self) -> dict:
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"questions": [], "last_digest": None}
        except (OSError, ValueError) as exc:
            raise PaperchatError(f"{self.path}: unreadable saved questions ({exc}); fix or remove the file") from None
        return state

    def questions(self) -> list[Watched]:
        return [Watched(q["question"], dict(q.get("filters") or {})) for q in self._state()["questions"]]

    def last_digest(self) -> str | None:
        return self._state().get("last_digest")

    def add(self, question: str, filters: dict, current_ids: list[str]) -> list[Watched]:
        """Save `question` (with its filters, checked); the first question marks every paper now in the index as
        seen, so that the first digest lists only papers added after it."""
        question = " ".join(question.split())
        if not question:
            raise PaperchatError("a saved question needs some words")
        filters = {name: value for name, value in filters.items() if value not in (None, "")}
        Filter.of(filters)  # a bad date is an error here, not at the first digest
        state = self._state()
        if any(q["question"] == question and (q.get("filters") or {}) == filters for q in state["questions"]):
            raise PaperchatError(f"already saved: {question!r}")
        state["questions"].append({"question": question, "filters": filters})
        if not self.seen_path.exists():
            self.mark_seen(current_ids, digested=False)
        write_text_atomically(self.path, json.dumps(state, indent=1))
        return self.questions()

    def remove(self, number: int) -> Watched:
        """Remove saved question `number` (1-based, as `list` shows them)."""
        state = self._state()
        if not 1 <= number <= len(state["questions"]):
            raise PaperchatError(f"there is no saved question {number}; `paperchat watch list` shows them")
        gone = state["questions"].pop(number - 1)
        write_text_atomically(self.path, json.dumps(state, indent=1))
        return Watched(gone["question"], dict(gone.get("filters") or {}))

    def seen(self) -> set[str]:
        try:
            return set(self.seen_path.read_text(encoding="utf-8").split("\n")) - {""}
        except FileNotFoundError:
            return set()

    def mark_seen(self, ids: list[str], digested: bool = True) -> None:
        """Remember `ids` as seen (and, for a digest, when it was made)."""
        write_text_atomically(self.seen_path, "\n".join(ids) + "\n")
        if digested:
            state = self._state()
            state["last_digest"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            write_text_atomically(self.path, json.dumps(state, indent=1))


def new_papers(assistant: Assistant, watchlist: Watchlist, since: str | None) -> list[str]:
    """The ids a digest considers: papers dated on or after `since`, else those the last digest had not seen."""
    snapshot = assistant.store.snapshot()
    if since:
        return snapshot.ids.at(Filter.of({"since": since}).mask(snapshot.columns).nonzero()[0])
    seen = watchlist.seen()
    return [doc_id for doc_id in snapshot.ids.at(snapshot.live_rows()) if doc_id not in seen]


def listed_hits(hits: list[Hit], new_ids: set[str], near_top: float = DIGEST_NEAR_TOP) -> list[tuple[Hit, float]]:
    """The new papers among a whole-index ranking (`hits`, best first) whose fused score is at least `near_top` of the
    best paper's, each with that share."""
    top = hits[0].score if hits else 0.0
    if top <= 0:
        return []
    return [(hit, hit.score / top) for hit in hits if hit.id in new_ids and hit.score >= near_top * top]


def digest_for(assistant: Assistant, watched: Watched, candidates: list[str]) -> DigestEntry:
    """The `candidates` (new papers) a search of the whole index for one saved question shows near the top, best
    first; none when the relevance gate finds nothing relevant."""
    if not candidates:
        return DigestEntry(watched.question, watched.filters, [])
    hits = assistant.retrieve(watched.question, DIGEST_RANK, where=watched.filters, depth=DIGEST_DEPTH).hits
    snapshot = assistant.store.snapshot()
    terms = search_terms(watched.question, snapshot.tokenizer)
    weights = snapshot.bm25.idf(terms)
    listed = []
    for hit, share in listed_hits(hits, set(candidates)):
        _, evidence = compose_answer([hit], terms, snapshot.tokenizer, weights, sources=1)
        listed.append(DigestPaper(hit, share, evidence[0].sentence if evidence else ""))
    return DigestEntry(watched.question, watched.filters, listed)


def digest(
    assistant: Assistant, watchlist: Watchlist, since: str | None = None, mark: bool = True
) -> list[DigestEntry]:
    """For each saved question, the papers added since the last digest (or dated since `since`) that answer it.
    A digest without `since` marks what it saw, so the next one lists only newer papers (unless `mark` is off)."""
    questions = watchlist.questions()
    if not questions:
        raise PaperchatError('no saved questions yet; save one with `paperchat watch add "QUESTION"`')
    candidates = new_papers(assistant, watchlist, since)
    entries = [digest_for(assistant, watched, candidates) for watched in questions]
    if mark and not since:
        snapshot = assistant.store.snapshot()
        watchlist.mark_seen(snapshot.ids.at(snapshot.live_rows()))
    return entries


def digest_text(entries: list[DigestEntry], fmt: str = "text") -> str:
    """The digest as text, markdown, json (each question by its text, each paper by its title) or an Atom feed."""
    if fmt == "json":
        return json.dumps([entry.to_dict() for entry in entries], indent=2, ensure_ascii=False)
    if fmt == "atom":
        return _atom(entries)
    if fmt not in ("text", "markdown"):
        raise PaperchatError(f"unknown digest format {fmt!r}; choose one of {', '.join(DIGEST_FORMATS)}")
    lines = []
    for entry in entries:
        lines.append(f"## {entry.question}" if fmt == "markdown" else f"{entry.question}")
        if not entry.papers:
            lines.append("  (no new paper answers it)" if fmt == "text" else "*No new paper answers it.*")
        for number, paper in enumerate(entry.papers, start=1):
            if fmt == "markdown":
                lines.append(f"{number}. [{paper.hit.title}]({paper.hit.citation.url}): {paper.evidence}")
            else:
                lines.append(f"  {number}. {paper.hit.title} ({paper.score:.2f})\n     \u201c{paper.evidence}\u201d")
        lines.append("")
    return "\n".join(lines)


def _atom(entries: list[DigestEntry]) -> str:
    """An Atom feed: one entry per (question, paper), the question as its category."""
    ns = "http://www.w3.org/2005/Atom"
    ET.register_namespace("", ns)
    feed = ET.Element(f"{{{ns}}}feed")
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    ET.SubElement(feed, f"{{{ns}}}title").text = "paperchat digest"
    ET.SubElement(feed, f"{{{ns}}}id").text = "urn:paperchat:digest"
    ET.SubElement(feed, f"{{{ns}}}updated").text = now
    for entry in entries:
        key = hashlib.sha1(entry.question.encode("utf-8")).hexdigest()[:12]
        for paper in entry.papers:
            item = ET.SubElement(feed, f"{{{ns}}}entry")
            ET.SubElement(item, f"{{{ns}}}title").text = paper.hit.title
            ET.SubElement(item, f"{{{ns}}}id").text = f"urn:paperchat:{key}:{paper.hit.id}"
            ET.SubElement(item, f"{{{ns}}}updated").text = now
            ET.SubElement(item, f"{{{ns}}}link", href=paper.hit.citation.url)
            ET.SubElement(item, f"{{{ns}}}category", term=entry.question)
            ET.SubElement(item, f"{{{ns}}}summary").text = paper.evidence
    return ET.tostring(feed, encoding="unicode", xml_declaration=True)


def describe(watched: list[Watched]) -> str:
    """The saved questions, numbered as `watch remove` takes them."""
    if not watched:
        return "No saved questions."
    return "\n".join(
        f"{n}. {w.question}" + (f"  [{', '.join(f'{k}={v}' for k, v in w.filters.items())}]" if w.filters else "")
        for n, w in enumerate(watched, start=1)
    )
