"""The ingest plan: what an ingest must write, decided from what Chroma holds. Pure functions.

Chroma metadata is flat, so a paper's list fields are stored as JSON strings
(`paper_to_record` / `record_to_paper`). A paper is re-embedded only when its title or
abstract changed (`content_hash`) or its passages were never fully written; a paper whose
text is the same but whose sources, dates, url or links changed gets a metadata-only update,
with its provenance merged: pages and dates accumulate, newer values replace older ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from paperchat.index.papers import Paper, arxiv_search_url, normalise_title, title_id


def content_hash(paper: Paper) -> str:
    """Changes exactly when what is embedded and BM25-indexed (title and abstract) changes."""
    return hashlib.sha1(json.dumps([paper.title, paper.abstract]).encode("utf-8")).hexdigest()


def paper_to_record(paper: Paper, passages: int | None = None) -> tuple[str, dict]:
    """Chroma document and metadata for a paper (list fields as JSON: Chroma metadata is flat).

    `passages` is how many passage vectors the paper has in the passage collection; it is
    written with the paper, after its passages, so a paper without it is not fully embedded.
    """
    metadata = {
        "title": paper.title,
        "url": paper.url,
        "pages": json.dumps(paper.pages),
        "dates": json.dumps(paper.dates),
        "code_links": json.dumps(paper.code_links),
        "content_hash": content_hash(paper),
        "authors": json.dumps(paper.authors),
        "date": paper.date,
        "arxiv_id": paper.arxiv_id,
        "doi": paper.doi,
        "venue": paper.venue,
        "categories": json.dumps(paper.categories),
    }
    if paper.year is not None:
        metadata["year"] = paper.year
    if passages is not None:
        metadata["passages"] = passages
    return paper.text, metadata


def record_to_paper(doc_id: str, document: str, metadata: Mapping) -> Paper:
    title = str(metadata.get("title", ""))
    abstract = document[len(title) + 1 :] if title and document.startswith(title + "\n") else document
    return Paper(
        id=doc_id,
        title=title,
        abstract=abstract,
        url=str(metadata.get("url", "")),
        pages=json.loads(metadata.get("pages") or "[]"),
        dates=json.loads(metadata.get("dates") or "[]"),
        code_links=json.loads(metadata.get("code_links") or "[]"),
        authors=json.loads(metadata.get("authors") or "[]"),
        date=str(metadata.get("date", "")),
        arxiv_id=str(metadata.get("arxiv_id", "")),
        doi=str(metadata.get("doi", "")),
        venue=str(metadata.get("venue", "")),
        categories=json.loads(metadata.get("categories") or "[]"),
    )


def merge_provenance(stored: Paper, incoming: Paper) -> Paper:
    """`incoming` (same id) with the stored paper's sources kept: pages accumulate (a page seen
    again takes its new date), and the stored url and code links stand unless `incoming` has its own."""
    pages, dates = list(stored.pages), list(stored.dates) + [""] * (len(stored.pages) - len(stored.dates))
    for page, date in zip(incoming.pages, incoming.dates or [""] * len(incoming.pages)):
        if page in pages:
            if date:
                dates[pages.index(page)] = date
        else:
            pages.append(page)
            dates.append(date)
    has_own_url = incoming.url and incoming.url != arxiv_search_url(incoming.title)
    return Paper(
        id=incoming.id,
        title=incoming.title,
        abstract=incoming.abstract,
        url=incoming.url if has_own_url else stored.url or incoming.url,
        pages=pages,
        dates=dates,
        code_links=incoming.code_links or stored.code_links,
        authors=incoming.authors or stored.authors,
        date=incoming.date or stored.date,
        arxiv_id=incoming.arxiv_id or stored.arxiv_id,
        doi=incoming.doi or stored.doi,
        venue=incoming.venue or stored.venue,
        categories=incoming.categories or stored.categories,
    )


@dataclass
class IngestPlan:
    """What to write: `embed` (new, changed or not fully embedded papers: embed and write) and
    `metadata` (same text, new provenance: `(id, metadata)` to update without re-embedding)."""

    embed: list[Paper] = field(default_factory=list)
    metadata: list[tuple[str, dict]] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def updated_metadata(self) -> int:
        return len(self.metadata)


def same_paper_ids(existing: Mapping[str, Mapping]) -> dict[str, str]:
    """Keys under which a stored paper can be met again from another source: its arXiv id, its DOI,
    and its normalised title when its id was made from the title (not one a file gave)."""
    keys: dict[str, str] = {}
    for doc_id, metadata in existing.items():
        for key in (f"arxiv:{metadata.get('arxiv_id')}" if metadata.get("arxiv_id") else "", f"doi:{metadata.get('doi')}" if metadata.get("doi") else ""):
            if key:
                keys.setdefault(key, doc_id)
        title = str(metadata.get("title", ""))
        if title and doc_id == title_id(title):
            keys.setdefault("title:" + normalise_title(title), doc_id)
    return keys


def stored_id(paper: Paper, keys: Mapping[str, str]) -> str | None:
    """The id under which `paper` is already stored with another id, if it is (see `same_paper_ids`)."""
    candidates = [f"arxiv:{paper.arxiv_id}" if paper.arxiv_id else "", f"doi:{paper.doi}" if paper.doi else "", "title:" + normalise_title(paper.title)]
    return next((keys[key] for key in candidates if key in keys), None)


def plan_ingest(existing: Mapping[str, Mapping], incoming: Sequence[Paper]) -> IngestPlan:
    """Decide, for each incoming paper, from the metadata Chroma holds by id (`existing`). A paper
    stored from another source under another id (same arXiv id, DOI or title) is updated there."""
    plan = IngestPlan()
    keys = same_paper_ids(existing) if any(paper.id not in existing for paper in incoming) else {}
    for paper in incoming:
        if paper.id not in existing:
            known = stored_id(paper, keys)
            paper = replace(paper, id=known) if known else paper
        old = existing.get(paper.id)
        if old is None:
            plan.added += 1
            plan.embed.append(paper)
            continue
        merged = merge_provenance(record_to_paper(paper.id, paper.text, old), paper)
        if old.get("content_hash") != content_hash(paper) or "passages" not in old:
            plan.updated += 1
            plan.embed.append(merged)
            continue
        _, metadata = paper_to_record(merged, old["passages"])
        if metadata == dict(old):
            plan.unchanged += 1
        else:
            plan.metadata.append((paper.id, metadata))
    return plan
