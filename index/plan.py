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
from dataclasses import dataclass, field

from paperchat.index.papers import Paper, arxiv_search_url


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
    }
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


def plan_ingest(existing: Mapping[str, Mapping], incoming: Sequence[Paper]) -> IngestPlan:
    """Decide, for each incoming paper, from the metadata Chroma holds by id (`existing`)."""
    plan = IngestPlan()
    for paper in incoming:
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
