"""Parse corpora into `Paper` records plus a `LoadReport` of what was skipped and where.

Formats: Hugging Face Daily Papers page dumps (.txt), JSONL / BEIR corpus.jsonl, CSV / TSV,
and folders of those. Loaders never raise for a bad entry: they report it with file and
line and keep every good entry. A path that cannot be read at all is a `PaperchatError`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from paperchat.index.errors import PaperchatError
from paperchat.index.papers import Paper, normalise_title, title_id

_DATE_LINE = re.compile(
    r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}(, \d{4})?$"
)
HEADER_SEARCH_LINES = 40
MAX_TITLE_CHARS = 400
SUPPORTED_SUFFIXES = {".txt": "pages", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "csv"}
TEXT_FIELDS = ("abstract", "text", "body", "content")
ID_FIELDS = ("_id", "id", "doc_id", "docid")


@dataclass
class Problem:
    """One skipped entry or suspicious input, located precisely enough to fix it."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}" if self.line else f"{self.source}: {self.message}"


@dataclass
class LoadReport:
    """What a load read, kept and skipped: shown to the user after every ingest."""

    entries: int = 0
    papers: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        text = f"read {self.entries} entries -> {self.papers} unique papers"
        if self.duplicates:
            text += f" ({self.duplicates} duplicates merged)"
        if self.problems:
            text += f"; skipped {len(self.problems)} problem(s)"
        return text


@dataclass
class _Entry:
    paper: Paper
    explicit_id: bool


def _decode(raw: bytes, source: str, problems: list[Problem]) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(source, line, "invalid UTF-8; undecodable bytes were replaced"))
        text = raw.decode("utf-8", errors="replace")
    return text.replace("\x00", "")


def _looks_like_title(line: str) -> bool:
    return len(line) <= MAX_TITLE_CHARS


def parse_pages(text: str, source: str, problems: list[Problem]) -> Iterator[Paper]:
    """Parse one Daily Papers page: header lines up to a date line (`Jun 6`), then title/abstract pairs."""
    lines = text.splitlines()
    date_at = next((i for i, line in enumerate(lines[:HEADER_SEARCH_LINES]) if _DATE_LINE.match(line.strip())), None)
    if date_at is None:
        problems.append(Problem(source, 0, f"not a Daily Papers page: no date line such as 'Jun 6' in the first {HEADER_SEARCH_LINES} lines"))
        return
    date = lines[date_at].strip()
    page = Path(source).stem
    body = [(number, line.strip()) for number, line in enumerate(lines[date_at + 1 :], start=date_at + 2) if line.strip()]
    i = 0
    while i < len(body):
        number, title = body[i]
        if not _looks_like_title(title):
            problems.append(Problem(source, number, f"expected a title, found a {len(title)}-character line (an abstract without its title?)"))
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


def _record_to_entry(record: dict, source: str, line: int, problems: list[Problem]) -> _Entry | None:
    title = _first(record, ("title",))
    abstract = _first(record, TEXT_FIELDS)
    if not abstract:
        problems.append(Problem(source, line, f"no abstract: expected one of the fields {', '.join(TEXT_FIELDS)}"))
        return None
    given_id = _first(record, ID_FIELDS)
    if not given_id and not title:
        problems.append(Problem(source, line, "neither an id nor a title to identify the entry"))
        return None
    paper = Paper(
        id=given_id or title_id(title),
        title=title,
        abstract=abstract,
        url=_first(record, ("url", "link")),
        pages=[Path(source).name],
        dates=[_first(record, ("date", "published"))],
    )
    return _Entry(paper, explicit_id=bool(given_id))


def parse_jsonl(text: str, source: str, problems: list[Problem]) -> Iterator[_Entry]:
    """One JSON object per line (JSONL, BEIR corpus.jsonl); blank lines are ignored."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(source, number, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(source, number, "expected a JSON object with title and abstract"))
            continue
        entry = _record_to_entry(record, source, number, problems)
        if entry:
            yield entry


def parse_csv(text: str, source: str, problems: list[Problem]) -> Iterator[_Entry]:
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
        problems.append(Problem(source, 1, f"no abstract column: the header needs one of {', '.join(TEXT_FIELDS)} (found: {', '.join(columns) or 'nothing'})"))
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
        entry = _record_to_entry(record, source, reader.line_num, problems)
        if entry:
            yield entry


def _files_in(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / "corpus.jsonl").is_file():
        return [path / "corpus.jsonl"]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


def _parse_file(path: Path, problems: list[Problem]) -> Iterator[_Entry]:
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    source = str(path)
    if kind is None:
        problems.append(Problem(source, 0, f"unsupported file type {path.suffix!r}; use .txt pages, .jsonl, .csv or .tsv"))
        return
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(source, 0, f"cannot read file ({exc.strerror or exc})"))
        return
    if not raw.strip():
        problems.append(Problem(source, 0, "empty file"))
        return
    text = _decode(raw, source, problems)
    if kind == "pages":
        for paper in parse_pages(text, source, problems):
            yield _Entry(paper, explicit_id=False)
    elif kind == "jsonl":
        yield from parse_jsonl(text, source, problems)
    else:
        yield from parse_csv(text, source, problems)


def merge_entries(entries: Iterable[_Entry], report: LoadReport) -> list[Paper]:
    """De-duplicate: by the source's own id when it gives one, else by normalised title."""
    by_key: dict[str, Paper] = {}
    by_id: dict[str, Paper] = {}
    for entry in entries:
        report.entries += 1
        paper = entry.paper
        key = "id:" + paper.id if entry.explicit_id else "title:" + normalise_title(paper.title)
        same = by_key.get(key) or by_id.get(paper.id)
        if same is not None and (key in by_key or normalise_title(same.title) == normalise_title(paper.title)):
            same.merge_source(paper)
            report.duplicates += 1
        elif same is not None:  # one id, two different papers: an explicit id equal to another entry's title-derived id
            report.problems.append(Problem(paper.pages[0] if paper.pages else "?", 0, f"id {paper.id!r} already names another paper "
                                           f"({same.title[:60]!r}); {paper.title[:60]!r} was skipped"))
        else:
            by_key[key] = by_id[paper.id] = paper
    papers = list(by_key.values())
    report.papers = len(papers)
    return papers


def load_paths(paths: Iterable[str | Path]) -> tuple[list[Paper], LoadReport]:
    """Load every file (or folder of files) given; raise only when a path does not exist."""
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

    def entries() -> Iterator[_Entry]:
        for file in files:
            yield from _parse_file(file, report.problems)

    papers = merge_entries(entries(), report)
    return papers, report


def bundled_pages() -> list[Path]:
    """The Daily Papers pages shipped inside the package: the default corpus."""
    folder = resources.files("paperchat.index") / "corpus"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".txt"))


def load_bundled() -> tuple[list[Paper], LoadReport]:
    return load_paths(bundled_pages())
