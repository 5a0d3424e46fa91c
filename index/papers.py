"""The one record that flows into the index: `Paper`, plus the id, identity and link rules.

`identity_keys` and `merge_papers` are the one rule for "the same paper seen again" and the one
way its sources are combined: the loader uses them within a load, the ingest plan against what
the index holds, so one load of many files and one ingest per file end in the same papers.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from dataclasses import dataclass, field, replace

from paperchat.index.tokenize import fold

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# github.com/owner/repo with or without scheme; trailing punctuation and ".git" are trimmed.
_GITHUB = re.compile(r"(?:https?://)?(?:www\.)?github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[^\s)\]\"'>,;]*)?", re.I)
MAX_ID_LENGTH = 80


def normalise_title(title: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form used to spot the same paper twice."""
    return _NON_WORD.sub(" ", fold(title).casefold()).strip()


def title_id(title: str) -> str:
    """A stable, readable id derived from the normalised title (a slug, hashed when long)."""
    norm = normalise_title(title)
    slug = norm.replace(" ", "-")
    if len(slug) <= MAX_ID_LENGTH:
        return slug or hashlib.sha1(title.encode("utf-8")).hexdigest()[:12]
    digest = hashlib.sha1(norm.encode("utf-8")).hexdigest()[:8]
    return slug[: MAX_ID_LENGTH - 9].rstrip("-") + "-" + digest


def code_links(text: str) -> list[str]:
    """GitHub repository links mentioned in an abstract, normalised to https URLs, in order of first mention."""
    links: list[str] = []
    for match in _GITHUB.finditer(text):
        link = match.group(0).rstrip(".,;:)")
        if link.endswith(".git"):
            link = link[:-4]
        if not link.lower().startswith("http"):
            link = "https://" + link
        if link not in links:
            links.append(link)
    return links


def web_url(url: str) -> str | None:
    """`url` when it is an http(s) link worth rendering as one, else None (javascript:, data:, file:, ...).

    Corpus files are data: only http and https ever become links, on every surface.
    """
    parsed = urllib.parse.urlsplit(url.strip()) if isinstance(url, str) else None
    if parsed is None or parsed.scheme.lower() not in ("http", "https") or not parsed.netloc:
        return None
    return urllib.parse.urlunsplit(parsed._replace(scheme=parsed.scheme.lower()))


_ARXIV_ID = re.compile(r"^(?:arxiv:)?((?:\d{4}\.\d{4,5})|(?:[a-z\-]+(?:\.[A-Z]{2})?/\d{7}))(?:v\d+)?$", re.I)
_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)?(10\.\d{4,9}/\S+)$", re.I)
_ISO_DATE = re.compile(r"^(\d{4})(?:-(0[1-9]|1[0-2])(?:-(0[1-9]|[12]\d|3[01]))?)?(?!\d)")


def arxiv_id(text: str) -> str:
    """The arXiv identifier in `text` ("arXiv:2406.01234v2", "hep-th/9901001"), without version; "" if none."""
    match = _ARXIV_ID.match(text.strip()) if text else None
    return match.group(1) if match else ""


def doi(text: str) -> str:
    """The DOI in `text` (bare, "doi:..." or a doi.org link), lower-cased; "" if none."""
    match = _DOI.match(text.strip()) if text else None
    return match.group(1).rstrip(".").lower() if match else ""


def iso_date(text: str) -> str:
    """The leading ISO date of `text` at the precision it has: "2024", "2024-06" or "2024-06-06"; "" if none."""
    match = _ISO_DATE.match(text.strip()) if text else None
    return "-".join(part for part in match.groups() if part) if match else ""


def canonical_url(arxiv: str, digital_object: str, title: str) -> str:
    """The link a citation should carry: the arXiv abstract page, else the DOI resolver, else an arXiv title search."""
    if arxiv:
        return f"https://arxiv.org/abs/{arxiv}"
    if digital_object:
        return "https://doi.org/" + urllib.parse.quote(digital_object, safe="/:;()._-")
    return arxiv_search_url(title)


def arxiv_search_url(title: str) -> str:
    """A citation link that works before an arXiv id is known: an arXiv title search."""
    return "https://arxiv.org/search/?searchtype=title&query=" + urllib.parse.quote_plus(title)


@dataclass
class Paper:
    """One paper: what a loader produces and what the store indexes.

    `pages` lists every source (page file or input file) the paper was seen in and
    `dates` the date label of each of those sources, in the same order. `date` is the paper's own
    date in ISO form at the precision known ("2024", "2024-06", "2024-06-06"), "" if unknown.
    """

    id: str
    title: str
    abstract: str
    url: str = ""
    pages: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    code_links: list[str] | None = None  # None: found in the abstract
    authors: list[str] = field(default_factory=list)
    date: str = ""
    arxiv_id: str = ""
    doi: str = ""
    venue: str = ""
    categories: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.url:
            self.url = canonical_url(self.arxiv_id, self.doi, self.title)
        if self.code_links is None:
            self.code_links = code_links(self.abstract)

    @property
    def year(self) -> int | None:
        return int(self.date[:4]) if self.date[:4].isdigit() else None

    @property
    def text(self) -> str:
        """What both BM25 and the embedding model see: the title together with the abstract."""
        return f"{self.title}\n{self.abstract}" if self.title else self.abstract


def identity_keys(paper: Paper) -> list[str]:
    """The keys under which `paper` is met again from another source, strongest first: its arXiv id,
    its DOI, then the id a file gave it or, when its id was made from these or from the title, its
    normalised title. Two papers sharing a key are one paper."""
    keys = [f"arxiv:{paper.arxiv_id}"] if paper.arxiv_id else []
    if paper.doi:
        keys.append(f"doi:{paper.doi}")
    title = normalise_title(paper.title)
    if paper.id not in (paper.arxiv_id, f"doi:{paper.doi}", title_id(paper.title)):
        keys.append(f"id:{paper.id}")
    elif title:
        keys.append(f"title:{title}")
    return keys


def merge_papers(known: Paper, newer: Paper) -> Paper:
    """One paper from `known` and `newer`, a later sighting of it: it keeps `known`'s id, takes `newer`'s
    text, and its sources accumulate (a page seen again takes its new date). Other fields take `newer`'s
    value when it has one; a url made up from the title never replaces a real one."""
    pages = list(known.pages)
    dates = list(known.dates) + [""] * (len(known.pages) - len(known.dates))
    for page, date in zip(newer.pages, newer.dates or [""] * len(newer.pages)):
        if page not in pages:
            pages.append(page)
            dates.append(date)
        elif date:
            dates[pages.index(page)] = date
    newer_has_own_url = newer.url and newer.url != arxiv_search_url(newer.title)
    return replace(
        newer,
        id=known.id,
        url=newer.url if newer_has_own_url else known.url or newer.url,
        pages=pages,
        dates=dates,
        code_links=newer.code_links or known.code_links,
        authors=newer.authors or known.authors,
        date=newer.date or known.date,
        arxiv_id=newer.arxiv_id or known.arxiv_id,
        doi=newer.doi or known.doi,
        venue=newer.venue or known.venue,
        categories=newer.categories or known.categories,
    )
