"""The record layouts researchers have, mapped to `Paper`: pure functions, one per format.

Each takes one parsed record (a JSON object, a BibTeX entry's fields, a RIS record) and returns a
`Paper`, or raises `ValueError` with what is wrong (the loader reports it with file and line).
Fields a source does not give stay empty; nothing is invented. A paper's id is its arXiv id, else
its DOI, else the slug of its title, so that the same paper from two sources meets under one id.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping

from paperchat.index.papers import Paper, arxiv_id, doi, iso_date, title_id

_BRACES = re.compile(r"(?<!\\)[{}]")
_MONTHS = {
    name: f"{number:02d}"
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


def clean(text) -> str:
    """Whitespace normalised (arXiv titles and abstracts carry hard line breaks); LaTeX kept as written."""
    return " ".join(str(text).split()) if text is not None else ""


def paper_id(arxiv: str, digital_object: str, title: str) -> str:
    return arxiv or (f"doi:{digital_object}" if digital_object else title_id(title))


def _required(title: str, abstract: str) -> None:
    if not abstract:
        raise ValueError("no abstract")
    if not title:
        raise ValueError("no title")


def from_arxiv(record: Mapping, source: str) -> Paper:
    """One line of the arXiv metadata snapshot (`id`, `title`, `abstract`, `authors_parsed`, `categories`,
    `versions`, ...)."""
    title, abstract = clean(record.get("title")), clean(record.get("abstract"))
    _required(title, abstract)
    identifier = arxiv_id(str(record.get("id") or ""))
    if not identifier:
        raise ValueError(f"no arXiv id (got {str(record.get('id'))[:40]!r})")
    parsed = record.get("authors_parsed")
    if isinstance(parsed, list) and parsed:
        authors = [
            clean(" ".join(part for part in (names[1], names[0], names[2] if len(names) > 2 else "") if part))
            for names in parsed
            if isinstance(names, list) and names
        ]
    else:
        authors = [clean(name) for name in re.split(r",\s*|\s+and\s+", str(record.get("authors") or "")) if clean(name)]
    versions = record.get("versions") if isinstance(record.get("versions"), list) else []
    first = versions[0].get("created") if versions and isinstance(versions[0], dict) else None
    return Paper(
        id=identifier,
        title=title,
        abstract=abstract,
        pages=[source],
        dates=[""],
        authors=authors,
        date=_rfc2822_date(first) or iso_date(str(record.get("update_date") or "")),
        arxiv_id=identifier,
        doi=doi(str(record.get("doi") or "").split()[0] if record.get("doi") else ""),
        venue=clean(record.get("journal-ref")),
        categories=str(record.get("categories") or "").split(),
    )


def _rfc2822_date(text) -> str:
    try:
        return email.utils.parsedate_to_datetime(str(text)).date().isoformat() if text else ""
    except (TypeError, ValueError):
        return ""


def from_openalex(record: Mapping, source: str) -> Paper:
    """One OpenAlex work: the abstract is rebuilt in word order from `abstract_inverted_index`."""
    title = clean(record.get("title") or record.get("display_name"))
    index = record.get("abstract_inverted_index")
    if not isinstance(index, Mapping):
        raise ValueError("no abstract_inverted_index")
    positions = [
        (position, word)
        for word, where in index.items()
        if isinstance(where, list)
        for position in where
        if isinstance(position, int)
    ]
    abstract = clean(" ".join(word for _, word in sorted(positions)))
    _required(title, abstract)
    digital_object = doi(str(record.get("doi") or ""))
    ids = record.get("ids") if isinstance(record.get("ids"), Mapping) else {}
    arxiv = arxiv_id(str(ids.get("arxiv") or "").rsplit("/", 1)[-1])
    location = record.get("primary_location") if isinstance(record.get("primary_location"), Mapping) else {}
    venue_source = location.get("source") if isinstance(location.get("source"), Mapping) else {}
    authors = [
        clean(a["author"].get("display_name"))
        for a in record.get("authorships") or []
        if isinstance(a, Mapping) and isinstance(a.get("author"), Mapping) and a["author"].get("display_name")
    ]
    return Paper(
        id=paper_id(arxiv, digital_object, title),
        title=title,
        abstract=abstract,
        pages=[source],
        dates=[""],
        authors=authors,
        date=iso_date(str(record.get("publication_date") or record.get("publication_year") or "")),
        arxiv_id=arxiv,
        doi=digital_object,
        venue=clean(venue_source.get("display_name")),
    )


def from_daily_papers(entry: Mapping, source: str) -> Paper:
    """One entry of the Hugging Face Daily Papers API (`paper`: `id`, `title`, `summary`, `authors`,
    `publishedAt`, ...)."""
    paper = entry.get("paper") if isinstance(entry.get("paper"), Mapping) else entry
    title, abstract = clean(paper.get("title") or entry.get("title")), clean(paper.get("summary"))
    _required(title, abstract)
    arxiv = arxiv_id(str(paper.get("id") or ""))
    repository = paper.get("githubRepo") or entry.get("githubRepo")
    return Paper(
        id=paper_id(arxiv, "", title),
        title=title,
        abstract=abstract,
        pages=[source],
        dates=[""],
        authors=[clean(a.get("name")) for a in paper.get("authors") or [] if isinstance(a, Mapping) and a.get("name")],
        date=iso_date(str(paper.get("publishedAt") or entry.get("publishedAt") or "")),
        arxiv_id=arxiv,
        code_links=[repository] if isinstance(repository, str) and repository.startswith("https://") else None,
    )


def from_bibtex(fields: Mapping[str, str], source: str) -> Paper:
    """One BibTeX entry's fields (Zotero, Mendeley and most reference managers write `abstract`)."""
    value = lambda name: _BRACES.sub("", clean(fields.get(name) or fields.get(name.capitalize()) or ""))
    title, abstract = value("title"), value("abstract")
    _required(title, abstract)
    eprint = value("eprint") if value("archiveprefix").lower() in ("arxiv", "") else ""
    arxiv = arxiv_id(eprint) or arxiv_id(value("arxivid"))
    digital_object = doi(value("doi"))
    year = value("year")
    month = _MONTHS.get(value("month")[:3].lower(), value("month").zfill(2) if value("month").isdigit() else "")
    return Paper(
        id=paper_id(arxiv, digital_object, title),
        title=title,
        abstract=abstract,
        url=_web(value("url")),
        pages=[source],
        dates=[""],
        authors=[_first_last(name) for name in re.split(r"\s+and\s+", value("author")) if name.strip()],
        date=iso_date(f"{year}-{month}" if year and month else year),
        arxiv_id=arxiv,
        doi=digital_object,
        venue=value("journal") or value("booktitle"),
        categories=[k.strip() for k in value("keywords").split(",") if k.strip()],
    )


def from_ris(record: Mapping, source: str) -> Paper:
    """One RIS record as `rispy` reads it (`title`/`primary_title`, `authors`, `abstract`, `year`/`date`,
    `doi`, ...)."""
    title = clean(record.get("title") or record.get("primary_title"))
    abstract = clean(record.get("abstract") or record.get("notes_abstract"))
    _required(title, abstract)
    digital_object = doi(str(record.get("doi") or ""))
    urls = record.get("urls") or []
    arxiv = next((arxiv_id(str(u).rsplit("/", 1)[-1]) for u in urls if "arxiv.org/abs/" in str(u)), "")
    date = (
        str(record.get("date") or record.get("publication_year") or record.get("year") or "")
        .replace("/", "-")
        .strip("-")
    )
    return Paper(
        id=paper_id(arxiv, digital_object, title),
        title=title,
        abstract=abstract,
        url=_web(urls[0]) if urls else "",
        pages=[source],
        dates=[""],
        authors=[
            _first_last(a) for a in (record.get("authors") or record.get("first_authors") or []) if str(a).strip()
        ],
        date=iso_date(date),
        arxiv_id=arxiv,
        doi=digital_object,
        venue=clean(record.get("journal_name") or record.get("secondary_title") or record.get("alternate_title3")),
        categories=[clean(k) for k in record.get("keywords") or [] if clean(k)],
    )


def _first_last(name: str) -> str:
    """ "Vaswani, Ashish" -> "Ashish Vaswani"; a name without a comma stays as written."""
    last, comma, first = clean(name).partition(",")
    return f"{first.strip()} {last.strip()}".strip() if comma else clean(name)


def _web(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else ""
