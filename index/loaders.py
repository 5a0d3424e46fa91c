"""Parse corpora into `Paper` records plus a `LoadReport` of what was skipped and where.

Formats: Hugging Face Daily Papers page dumps (.txt), JSONL / BEIR corpus.jsonl, CSV / TSV, the
arXiv metadata snapshot, OpenAlex works, the Hugging Face Daily Papers API JSON, BibTeX and RIS,
and folders of those. The format is recognised from the content (the extension only breaks
ties); `format=` forces one. JSON-lines files are streamed line by line, and a `keep` filter
drops papers as they are read, so a slice of a multi-GB arXiv snapshot costs the slice's memory.
Loaders never raise for a bad entry: they report it with file and line and keep every good entry.
A path that cannot be read at all is a `PaperchatError`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from paperchat.index.columns import date_bounds
from paperchat.index.errors import PaperchatError
from paperchat.index.formats import from_arxiv, from_bibtex, from_daily_papers, from_openalex, from_ris
from paperchat.index.papers import (
    Paper,
    arxiv_id,
    doi,
    identity_keys,
    iso_date,
    merge_papers,
    normalise_title,
    title_id,
)
from paperchat.index.tokenize import without_lone_surrogates

_DATE_LINE = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}(, \d{4})?$")
HEADER_SEARCH_LINES = 40
MAX_TITLE_CHARS = 400
SUPPORTED_SUFFIXES = {
    ".txt": "pages",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".bib": "bibtex",
    ".bibtex": "bibtex",
    ".ris": "ris",
}
FORMATS = ("pages", "jsonl", "csv", "arxiv", "openalex", "daily-papers", "bibtex", "ris")
LINE_FORMATS = {"jsonl": None, "arxiv": from_arxiv, "openalex": from_openalex}
SNIFF_BYTES = 1 << 16
MAX_PROBLEMS_LISTED = 1000  # per streamed file
TEXT_FIELDS = ("abstract", "text", "body", "content")
ID_FIELDS = ("_id", "id", "doc_id", "docid")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # how JSON writes half of a surrogate pair


@dataclass
class Problem:
    """One skipped entry or suspicious input, located precisely enough to fix it (`repaired`: the entry was kept, its
    text mended)."""

    source: str
    line: int
    message: str
    repaired: bool = False

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}" if self.line else f"{self.source}: {self.message}"


@dataclass
class LoadReport:
    """What a load read, kept and skipped: shown to the user after every ingest."""

    entries: int = 0
    papers: int = 0
    duplicates: int = 0
    filtered: int = 0
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        text = f"read {self.entries} entries -> {self.papers} unique papers"
        if self.duplicates:
            text += f" ({self.duplicates} duplicates merged)"
        if self.filtered:
            text += f"; {self.filtered} left out by the filters"
        repaired = sum(problem.repaired for problem in self.problems)
        if len(self.problems) > repaired:
            text += f"; skipped {len(self.problems) - repaired} problem(s)"
        if repaired:
            text += f"; repaired {repaired} problem(s)"
        return text


def _decode(raw: bytes, source: str, problems: list[Problem]) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(source, line, "invalid UTF-8; undecodable bytes were replaced", repaired=True))
        text = raw.decode("utf-8", errors="replace")
    return text.replace("\x00", "")


def _looks_like_title(line: str) -> bool:
    return len(line) <= MAX_TITLE_CHARS


def parse_pages(text: str, source: str, problems: list[Problem]) -> Iterator[Paper]:
    """Parse one Daily Papers page: header lines up to a date line (`Jun 6`), then title/abstract pairs."""
    lines = text.splitlines()
    date_at = next((i for i, line in enumerate(lines[:HEADER_SEARCH_LINES]) if _DATE_LINE.match(line.strip())), None)
    if date_at is None:
        problems.append(
            Problem(
                source,
                0,
                f"not a Daily Papers page: no date line such as 'Jun 6' in the first {HEADER_SEARCH_LINES} lines",
            )
        )
        return
    date = lines[date_at].strip()
    page = f"HF Daily Papers, {date}"  # how a reader knows the listing, not the scraper's file name
    body = [
        (number, line.strip()) for number, line in enumerate(lines[date_at + 1 :], start=date_at + 2) if line.strip()
    ]
    i = 0
    while i < len(body):
        number, title = body[i]
        if not _looks_like_title(title):
            problems.append(
                Problem(
                    source,
                    number,
                    f"expected a title, found a {len(title)}-character line (an abstract without its title?)",
                )
            )
            i += 1
            continue
        if i + 1 >= len(body):
            problems.append(Problem(source, number, f"title without an abstract: {title[:80]!r}"))
            break
        abstract_number, abstract = body[i + 1]
        followed_by_long = i + 2 < len(body) and not _looks_like_title(body[i + 2][1])
        if _looks_like_title(abstract) and followed_by_long:
            problems.append(Problem(source, number, f"title without an abstract: {title[:80]!r}"))
            i += 1
            continue
        yield Paper(id=title_id(title), title=title, abstract=abstract, pages=[page], dates=[date])
        i += 2


def _first(record: dict, names: Iterable[str]) -> str:
    for name in names:
        value = record.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return ""


def _record_to_paper(record: dict, source: str, line: int, problems: list[Problem]) -> Paper | None:
    title = _first(record, ("title",))
    abstract = _first(record, TEXT_FIELDS)
    if not abstract:
        problems.append(Problem(source, line, f"no abstract: expected one of the fields {', '.join(TEXT_FIELDS)}"))
        return None
    given_id = _first(record, ID_FIELDS)
    if not given_id and not title:
        problems.append(Problem(source, line, "neither an id nor a title to identify the entry"))
        return None
    date = _first(record, ("date", "published", "year"))
    return Paper(
        id=given_id or title_id(title),
        title=title,
        abstract=abstract,
        url=_first(record, ("url", "link")),
        pages=[Path(source).name],
        dates=[date],
        authors=_names(record.get("authors") or record.get("author")),
        date=iso_date(date),
        arxiv_id=arxiv_id(_first(record, ("arxiv_id", "arxiv"))),
        doi=doi(_first(record, ("doi",))),
        venue=_first(record, ("venue", "journal")),
        categories=_names(record.get("categories") or record.get("keywords"), separators=r"[;,]\s*|\s+"),
    )


def _names(value, separators: str = r"\s*;\s*|\s+and\s+") -> list[str]:
    """A list field as JSON gives it, or as one string (authors "A; B" or "A and B"; categories "cs.CL cs.LG")."""
    if isinstance(value, list):
        return [" ".join(str(v).split()) for v in value if str(v).strip()]
    if isinstance(value, str):
        return [part.strip() for part in re.split(separators, value) if part.strip()]
    return []


class _CappedProblems(list):
    """The first `limit` problems of a file, and a count of the rest: a broken multi-GB file must not fill the memory
    with reports."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.unlisted = 0

    def append(self, problem: Problem) -> None:
        if len(self) < self.limit:
            super().append(problem)
        else:
            self.unlisted += 1


def parse_json_lines(lines: Iterable[bytes], source: str, kind: str, problems: list[Problem]) -> Iterator[Paper]:
    """One JSON object per line (JSONL, BEIR corpus.jsonl, arXiv snapshot, OpenAlex), read as it streams."""
    mapper = LINE_FORMATS[kind]
    name = Path(source).name
    found = _CappedProblems(MAX_PROBLEMS_LISTED)
    try:
        yield from _json_lines(lines, source, name, mapper, found)
    finally:
        problems.extend(found)
        if found.unlisted:
            problems.append(Problem(source, 0, f"{found.unlisted} more problem(s) in this file not listed"))


def _json_lines(lines: Iterable[bytes], source: str, name: str, mapper, problems: list[Problem]) -> Iterator[Paper]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            problems.append(Problem(source, number, "invalid UTF-8; undecodable bytes were replaced", repaired=True))
            line = raw.decode("utf-8", errors="replace")
        try:
            record = _json(line, source, number, problems)
        except json.JSONDecodeError as exc:
            problems.append(Problem(source, number, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(source, number, "expected a JSON object with title and abstract"))
            continue
        if mapper is None:
            paper = _record_to_paper(record, source, number, problems)
        else:
            paper = _mapped(mapper, record, name, source, number, problems)
        if paper:
            yield paper


def _json(text: str, source: str, line: int, problems: list[Problem]):
    """`text` parsed as JSON, with each unpaired surrogate escape ("\\ud83d" cut from its pair) replaced by U+FFFD
    and reported: nothing that stores or embeds text can encode one."""
    value = json.loads(text)
    if not _SURROGATE_ESCAPE.search(text):
        return value
    value, replaced = without_lone_surrogates(value)
    if replaced:
        problem = f"{replaced} unpaired surrogate escape(s) replaced with U+FFFD"
        problems.append(Problem(source, line, problem, repaired=True))
    return value


def _mapped(mapper, record, name: str, source: str, line: int, problems: list[Problem]) -> Paper | None:
    """A record of a known layout as a paper (its id derived from arXiv id, DOI or title), or a reported problem."""
    try:
        return mapper(record, name)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        problems.append(Problem(source, line, f"skipped: {exc}"))
        return None


def parse_daily_papers(text: str, source: str, problems: list[Problem]) -> Iterator[Paper]:
    """The Hugging Face Daily Papers API: a JSON list of entries, each with a `paper`."""
    try:
        entries = _json(text, source, 0, problems)
    except json.JSONDecodeError as exc:
        problems.append(Problem(source, exc.lineno, f"not valid JSON ({exc.msg})"))
        return
    if not isinstance(entries, list):
        problems.append(Problem(source, 1, "expected a JSON list of Daily Papers entries"))
        return
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            problems.append(Problem(source, 0, f"entry {number}: expected a JSON object"))
            continue
        found = _mapped(from_daily_papers, entry, Path(source).name, source, 0, problems)
        if found:
            yield found


def parse_bibtex(text: str, source: str, problems: list[Problem]) -> Iterator[Paper]:
    """BibTeX through bibtexparser; a block it cannot parse is reported with its line."""
    import bibtexparser

    logging.getLogger("bibtexparser").setLevel(
        logging.ERROR
    )  # its own warnings would repeat what the report says, less precisely
    library = bibtexparser.parse_string(text)
    for block in library.failed_blocks:
        problems.append(Problem(source, block.start_line + 1, "unreadable BibTeX entry"))
    for entry in library.entries:
        fields = {key.lower(): str(field.value) for key, field in entry.fields_dict.items()}
        found = _mapped(from_bibtex, fields, Path(source).name, source, entry.start_line + 1, problems)
        if found:
            yield found


def parse_ris(text: str, source: str, problems: list[Problem]) -> Iterator[Paper]:
    """RIS through rispy (what EndNote, Zotero and Mendeley export)."""
    import rispy

    try:
        records = rispy.loads(text)
    except Exception as exc:  # rispy raises plain exceptions for malformed files
        problems.append(Problem(source, 0, f"unreadable RIS ({type(exc).__name__}: {str(exc)[:120]})"))
        return
    for record in records:
        found = _mapped(from_ris, record, Path(source).name, source, 0, problems)
        if found:
            yield found


def detect_format(path: Path, head: bytes) -> str | None:
    """The format of a file from its first bytes; the extension decides only what the content leaves open."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    suffix = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if re.match(r"@\w+[ \t]*[{(]", text) or (suffix == "bibtex" and "@" in text):  # "@article{" on one line
        return "bibtex"
    if re.match(r"TY  - ", text) or suffix == "ris":
        return "ris"
    if text.startswith("[") and path.suffix.lower() not in (
        ".jsonl",
        ".ndjson",
    ):  # in a JSON-lines file, "[" opens one (bad) line
        return "daily-papers"
    if text.startswith("{"):
        first = text.split("\n", 1)[0]
        if '"abstract_inverted_index"' in first or '"authorships"' in first:
            return "openalex"
        if '"authors_parsed"' in first or ('"versions"' in first and '"categories"' in first):
            return "arxiv"
        return "jsonl"
    if suffix in ("pages", "csv"):
        return suffix
    if any(_DATE_LINE.match(line.strip()) for line in text.splitlines()[:HEADER_SEARCH_LINES]):
        return "pages"
    return suffix


def parse_csv(text: str, source: str, problems: list[Problem]) -> Iterator[Paper]:
    """CSV or TSV with a header row naming title and abstract (or text) columns."""
    delimiter = "\t" if source.lower().endswith(".tsv") else ","
    csv.field_size_limit(sys.maxsize)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        columns = [str(c).strip().lower() for c in (reader.fieldnames or [])]
    except csv.Error as exc:
        problems.append(Problem(source, 1, f"unreadable CSV header ({exc})"))
        return
    if not any(c in TEXT_FIELDS for c in columns):
        problems.append(
            Problem(
                source,
                1,
                f"no abstract column: the header needs one of {', '.join(TEXT_FIELDS)} "
                f"(found: {', '.join(columns) or 'nothing'})",
            )
        )
        return
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(Problem(source, reader.line_num, f"malformed CSV row ({exc})"))
            continue
        record = {str(k).strip().lower(): v for k, v in row.items() if k is not None and isinstance(v, str)}
        paper = _record_to_paper(record, source, reader.line_num, problems)
        if paper:
            yield paper


def _files_in(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / "corpus.jsonl").is_file():
        return [path / "corpus.jsonl"]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


def _parse_file(path: Path, fmt: str | None, problems: list[Problem]) -> Iterator[Paper]:
    source = str(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
            kind = fmt or detect_format(path, head)
            if not head.strip():
                problems.append(Problem(source, 0, "empty file"))
                return
            if kind is None:
                problems.append(
                    Problem(
                        source,
                        0,
                        f"unrecognised file {path.suffix!r}; use Daily Papers pages, JSONL, CSV/TSV, the arXiv "
                        "snapshot, OpenAlex, Daily Papers API JSON, BibTeX or RIS (or name one with --format)",
                    )
                )
                return
            if kind in LINE_FORMATS:  # streamed: the file is never read whole
                handle.seek(0)
                yield from parse_json_lines(handle, source, kind, problems)
                return
            raw = head + handle.read()
    except OSError as exc:
        problems.append(Problem(source, 0, f"cannot read file ({exc.strerror or exc})"))
        return
    text = _decode(raw, source, problems)
    if kind == "pages":
        yield from parse_pages(text, source, problems)
    elif kind == "csv":
        yield from parse_csv(text, source, problems)
    elif kind == "daily-papers":
        yield from parse_daily_papers(text, source, problems)
    elif kind == "bibtex":
        yield from parse_bibtex(text, source, problems)
    else:
        yield from parse_ris(text, source, problems)


def merge_entries(
    papers: Iterable[Paper], report: LoadReport, keep: Callable[[Paper], bool] | None = None
) -> list[Paper]:
    """De-duplicate by the rule the ingest plan uses: papers sharing an identity key (`identity_keys`: arXiv
    id, DOI, the id a file gave, else the normalised title) are one, merged by `merge_papers`. Papers `keep`
    refuses are dropped as they come (and counted)."""
    by_id: dict[str, Paper] = {}
    owners: dict[str, str] = {}
    for paper in papers:
        report.entries += 1
        if keep is not None and not keep(paper):
            report.filtered += 1
            continue
        keys = identity_keys(paper)
        owner = next((owners[key] for key in keys if key in owners), None)
        same_id = by_id.get(paper.id)
        if owner is None and same_id is not None:  # one id, no key in common: one paper only if the titles agree
            if normalise_title(same_id.title) != normalise_title(paper.title):
                where = paper.pages[0] if paper.pages else "?"
                other = same_id.title[:60]
                message = f"id {paper.id!r} already names another paper ({other!r}); {paper.title[:60]!r} was skipped"
                report.problems.append(Problem(where, 0, message))
                continue
            owner = paper.id
        if owner is None:
            by_id[paper.id] = paper
            owner = paper.id
        else:
            by_id[owner] = merge_papers(by_id[owner], paper)
            report.duplicates += 1
        for key in keys:
            owners.setdefault(key, owner)
    merged = list(by_id.values())
    report.papers = len(merged)
    return merged


def date_in(date: str, since: str | None, until: str | None) -> bool:
    """Whether a date of any precision can lie in [since, until] (the rule filters use: `columns.date_bounds`); unknown
    dates cannot."""
    low, high = date_bounds(date)
    if not low:
        return not since and not until
    return (not since or high >= date_bounds(since)[0]) and (not until or low <= date_bounds(until)[1])


def ingest_filter(
    categories: Iterable[str] = (), since: str | None = None, until: str | None = None
) -> Callable[[Paper], bool] | None:
    """What `paperchat ingest --category --since --until` keeps while loading: None when nothing is asked."""
    wanted = {c.lower() for c in categories}
    for name, value in (("since", since), ("until", until)):
        if value and iso_date(value) != value:
            raise PaperchatError(f"--{name} {value!r} is not an ISO date (2024, 2024-06 or 2024-06-01)")
    if not wanted and not since and not until:
        return None
    return lambda paper: (
        (not wanted or bool(wanted & {c.lower() for c in paper.categories})) and date_in(paper.date, since, until)
    )


def load_paths(
    paths: Iterable[str | Path], fmt: str | None = None, keep: Callable[[Paper], bool] | None = None
) -> tuple[list[Paper], LoadReport]:
    """Load every file (or folder of files) given; raise only when a path does not exist or `fmt` is unknown."""
    if fmt is not None and fmt not in FORMATS:
        raise PaperchatError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    report = LoadReport()
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise PaperchatError(f"{path}: no such file or folder")
        found = _files_in(path)
        if not found:
            report.problems.append(Problem(str(path), 0, "no .txt, .jsonl, .csv or .tsv files found"))
        files.extend(found)

    def papers_read() -> Iterator[Paper]:
        for file in files:
            yield from _parse_file(file, fmt, report.problems)

    papers = merge_entries(papers_read(), report, keep)
    return papers, report


def bundled_pages() -> list[Path]:
    """The Daily Papers pages shipped inside the package: the default corpus."""
    folder = resources.files("paperchat.index") / "corpus"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".txt"))


def load_bundled() -> tuple[list[Paper], LoadReport]:
    return load_paths(bundled_pages())
