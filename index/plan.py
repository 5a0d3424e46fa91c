"""The ingest plan: what an ingest must write, decided from what Chroma holds. Pure functions.

Chroma metadata is flat, so a paper's list fields are stored as JSON strings
(`paper_to_record` / `record_to_paper`). A paper is re-embedded only when its title or
abstract changed (`content_hash`) or its passages were never fully written; a paper whose
text is the same but whose sources, dates, url or links changed gets a metadata-only update,
with its provenance merged: pages and dates accumulate, newer values replace older ones.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from paperchat.index.papers import Paper, identity_keys, merge_papers, normalise_title


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
        "title_key": normalise_title(paper.title),  # what an ingest looks a paper up by (`identity_keys`)
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


def group_by_paper(existing: Mapping[str, Mapping], incoming: Sequence[Paper]) -> dict[str, list[Paper]]:
    """The incoming records by the id of the paper each one is: the stored paper with its id, else the
    stored or earlier incoming paper it shares an identity key with (`identity_keys`), else itself.
    Stored papers are known first, so that records meeting one stored paper from different sides
    (one by its arXiv id, one by its DOI) land on that paper together."""
    owners: dict[str, str] = {}
    if any(paper.id not in existing for paper in incoming):
        for doc_id, metadata in existing.items():
            for key in identity_keys(record_to_paper(doc_id, "", metadata)):
                owners.setdefault(key, doc_id)
    groups: dict[str, list[Paper]] = {}
    for paper in incoming:
        keys = identity_keys(paper)
        owner = paper.id if paper.id in existing else next((owners[key] for key in keys if key in owners), paper.id)
        for key in keys:
            owners.setdefault(key, owner)
        groups.setdefault(owner, []).append(paper)
    return groups


def plan_ingest(existing: Mapping[str, Mapping], incoming: Sequence[Paper]) -> IngestPlan:
    """Decide, for each paper the incoming records are (`group_by_paper`), from the metadata Chroma holds
    by id (`existing`). The records of one paper become one write: the stored paper with their sources
    merged in (`merge_papers`)."""
    plan = IngestPlan()
    for doc_id, records in group_by_paper(existing, incoming).items():
        old = existing.get(doc_id)
        if old is None:
            plan.added += 1
            plan.embed.append(functools.reduce(merge_papers, records))
            continue
        merged = functools.reduce(merge_papers, records, record_to_paper(doc_id, "", old))
        if old.get("content_hash") != content_hash(merged) or "passages" not in old:
            plan.updated += 1
            plan.embed.append(merged)
            continue
        _, metadata = paper_to_record(merged, old["passages"])
        if metadata == dict(old):
            plan.unchanged += 1
        else:
            plan.metadata.append((doc_id, metadata))
    return plan
