"""Sources for reference managers: BibTeX, RIS and CSL-JSON from hits. Pure.

Keys are `firstauthorYEARfirstword` (ASCII, lower case), made unique with a, b, c ...; a field the
sources did not give is left out, never invented. BibTeX and RIS are written by the same
libraries the loaders read them with (bibtexparser, rispy), so an export reads back field for field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from paperchat.hits import Hit
from paperchat.index.errors import PaperchatError
from paperchat.index.papers import arxiv_search_url
from paperchat.index.tokenize import fold

EXPORT_FORMATS = ("bibtex", "ris", "csljson")
_STOP = {
    "a",
    "an",
    "the",
    "on",
    "of",
    "for",
    "in",
    "to",
    "and",
    "with",
    "is",
    "are",
    "how",
    "what",
    "why",
    "towards",
    "toward",
}


def _ascii(text: str) -> str:
    """`text` with accents folded and any other non-ASCII letter dropped: citation keys are plain ASCII."""
    return fold(text).encode("ascii", "ignore").decode()


def _family(name: str) -> str:
    return name.split()[-1] if name.split() else ""


def citation_keys(hits: Sequence[Hit]) -> list[str]:
    """One stable key per hit: first author's family name, year, first significant title word."""
    keys: list[str] = []
    for hit in hits:
        c = hit.citation
        author = re.sub(r"[^a-z]", "", _ascii(_family(c.authors[0])).lower()) if c.authors else ""
        word = next((w for w in re.findall(r"[a-z0-9]+", _ascii(hit.title).lower()) if w not in _STOP), "paper")
        base = f"{author or 'anon'}{c.year or ''}{word}"
        key, suffix = base, 0
        while key in keys:
            suffix += 1
            key = base + "abcdefghijklmnopqrstuvwxyz"[(suffix - 1) % 26] * (1 + (suffix - 1) // 26)
        keys.append(key)
    return keys


def export(hits: Sequence[Hit], fmt: str) -> str:
    """The hits as a BibTeX, RIS or CSL-JSON document."""
    if fmt not in EXPORT_FORMATS:
        raise PaperchatError(f"unknown export format {fmt!r}; choose one of: {', '.join(EXPORT_FORMATS)}")
    return {"bibtex": to_bibtex, "ris": to_ris, "csljson": to_csljson}[fmt](hits)


def _own_url(hit: Hit) -> str:
    """The paper's link, or "" when it is only the arXiv title search paperchat falls back to."""
    return "" if hit.citation.url == arxiv_search_url(hit.title) else hit.citation.url


def _date_parts(date: str) -> list[int]:
    return [int(part) for part in date.split("-") if part.isdigit()]


def to_bibtex(hits: Sequence[Hit]) -> str:
    import bibtexparser
    from bibtexparser.model import Entry, Field

    library = bibtexparser.Library()
    for key, hit in zip(citation_keys(hits), hits):
        c = hit.citation
        fields = {
            "title": hit.title,
            "author": " and ".join(c.authors),
            "year": str(c.year or ""),
            "journal": c.venue,
            "doi": c.doi,
            "eprint": c.arxiv_id,
            "archiveprefix": "arXiv" if c.arxiv_id else "",
            "url": _own_url(hit),
            "abstract": hit.abstract,
            "keywords": ", ".join(c.categories),
        }
        kind = "article" if c.venue else "misc"
        library.add(Entry(kind, key, [Field(name, value) for name, value in fields.items() if value]))
    return bibtexparser.write_string(library)


def to_ris(hits: Sequence[Hit]) -> str:
    import rispy

    records = []
    for key, hit in zip(citation_keys(hits), hits):
        c = hit.citation
        record = {
            "type_of_reference": "JOUR" if c.venue else "GEN",
            "id": key,
            "title": hit.title,
            "authors": list(c.authors),
            "year": str(c.year or ""),
            "date": c.date.replace("-", "/") if len(c.date) > 4 else "",
            "doi": c.doi,
            "journal_name": c.venue,
            "urls": [_own_url(hit)] if _own_url(hit) else [],
            "abstract": hit.abstract,
            "keywords": list(c.categories),
        }
        records.append({name: value for name, value in record.items() if value})
    return rispy.dumps(records)


def to_csljson(hits: Sequence[Hit]) -> str:
    items = []
    for key, hit in zip(citation_keys(hits), hits):
        c = hit.citation
        item = {
            "id": key,
            "type": "article-journal" if c.venue else "article",
            "title": hit.title,
            "author": [
                {"family": _family(name), "given": name[: -len(_family(name))].strip()}
                if " " in name.strip()
                else {"literal": name}
                for name in c.authors
            ],
            "issued": {"date-parts": [_date_parts(c.date)]} if c.date else None,
            "DOI": c.doi,
            "URL": _own_url(hit),
            "container-title": c.venue,
            "abstract": hit.abstract,
            "keyword": ", ".join(c.categories),
        }
        items.append({name: value for name, value in item.items() if value})
    return json.dumps(items, ensure_ascii=False, indent=1)
