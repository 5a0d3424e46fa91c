"""What a chat message asks for besides a search, read by pure rules: a filter change, or an action on the
papers the previous turn showed ("more like [2]", "the second one", "compare [1] and [3]").

A message changes the filter only when it *asks* for one. A year-like number, "code" or "from" inside a content
question stays content: "context windows from 2048 tokens", "models from 2018 like BERT", "code generation
benchmarks". The rules, all in `read_filter_request`:

- a date is a date only in a request form ("since 2024", "from 2023 on", "2024 or later", "before june 2024",
  "published in 2024", "between 2021 and 2023"); a bare "from 2018" or "in 2024" counts only when the message
  asks nothing else ("from 2018?") or says "only"/"papers" with it;
- a year is plausible (1900 to next year) and never a quantity: "2048 tokens", "up to 2048 demonstrations";
- "code" is a request only as "with code", "that have released code", "code is available", "without code", at
  the end of a clause ("with code and natural language data" is content);
- an author needs "by" after a word that names papers ("anything by Kaplan", "only papers by Jimmy Lin"),
  a venue a known venue name with "only"/"just"/"accepted at", a category an arXiv category ("just cs.CV").

Exclusive bounds are made inclusive: "before 2024" is `until=2023`, "after june 2024" is `since=2024-07`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from paperchat.chat import content_words

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sept", "sep"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
VENUES = (
    "NeurIPS NIPS ICLR ICML ACL EMNLP NAACL EACL COLING TACL CVPR ICCV ECCV WACV AAAI IJCAI KDD SIGIR WSDM CIKM WWW "
    "TheWebConf RecSys ICSE FSE ASE ISSTA MSR PLDI POPL OSDI SOSP NSDI MLSys COLT AISTATS UAI TMLR JMLR CoRL RSS "
    "ICRA IROS MICCAI Interspeech ICASSP"
).split()
ARCHIVES = (
    r"cs|stat|math|eess|econ|q-bio|q-fin|physics|astro-ph|cond-mat|hep-th|hep-ph|hep-ex|hep-lat|gr-qc|quant-ph|nlin|"
    r"nucl-th|nucl-ex|math-ph"
)
SOURCES = {"hf daily papers": "HF Daily Papers", "hugging face daily papers": "HF Daily Papers"}
DATE_FIELDS = ("since", "until")
FIELD_WORDS = {
    "date": DATE_FIELDS,
    "dates": DATE_FIELDS,
    "year": DATE_FIELDS,
    "years": DATE_FIELDS,
    "time": DATE_FIELDS,
    "code": ("has_code",),
    "category": ("category",),
    "categories": ("category",),
    "author": ("author",),
    "authors": ("author",),
    "venue": ("venue",),
    "venues": ("venue",),
    "source": ("source",),
    "sources": ("source",),
}
# Words of a filter request that carry no topic: what is left after them says whether the message also asks
# a new question ("any on LLM pruning with code?").
REQUEST_FILLER = frozenset(
    """only just filter filters filtered restrict restricted limit limited keep exclude drop remove show showing
    want need please actually make change set ones papers paper stuff work works articles anything something
    everything again any those these them which of have has can could you me i we available instead also now
    published accepted appeared released older newer later earlier nothing let lets go back""".split()
)

_MONTH = r"(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_NUMBER_DATE = r"\d{4}(?:-\d{1,2}(?:-\d{1,2})?)?"
_DATE = rf"(?:(?:the\s+)?(?:end|start|beginning)\s+of\s+)?(?:{_MONTH}\s+)?{_NUMBER_DATE}"
# After a date in a request: the end of the clause, or words that go with a date filter. Anything else ("2048
# tokens", "2018 like BERT", "2025 contest") makes the number content.
_AFTER_DATE = (
    r"(?=\s*(?:$|[?!.,;:)]|-\s|and\b|or\b|only\b|papers?\b|ones\b|works?\b|articles?\b|stuff\b|please\b|on\b|"
    r"onwards?\b|inclusive\b|through\b|till\b|until\b|to\b|then\b|instead\b|with\b|in\s+[a-z-]+\.[a-z]{2}\b))"
)
_CLAUSE_END = (
    r"(?=\s*(?:$|[?!.,;:)]|-\s|please\b|only\b|too\b|as\s+well\b|then\b|instead\b|available\b|"
    r"(?:i|we|you)\s+can\s+(?:run|use|try)\b|and\s+(?:only|just|in|since|from|before|after|until|restrict|limit|"
    r"also|published|by)\b|in\s+[a-z-]+\.[a-z]{2}\b|since\b|from\b|before\b|after\b|until\b))"
)


# "skip anything before 2022", "nothing after 2019": what is excluded, so the bound is the date itself
_EXCLUDING = (
    r"\b(?:skip|exclude|drop|hide|remove|filter\s+out|ignore|no|nothing|not)\s+(?:anything|everything|all|papers|"
    r"ones|stuff|work|those|results)?\s*(?:published\s+|from\s+)?"
)


def _date_pattern(before: str, after: str = "") -> re.Pattern:
    return re.compile(rf"(?:{before})(?P<date>{_DATE})(?:{after}){_AFTER_DATE}", re.I)


# (operation, pattern, strong): a weak form is a request only when the message asks nothing else, or says
# "only"/"papers" with it. Operations: since/until take the date as given, after/before exclude it, in takes
# its whole period, range takes two dates, replace ("make that 2024") changes the date bound in force.
_DATE_FORMS = [
    (
        "range",
        re.compile(
            rf"\b(?:between|from)\s+(?P<date>{_DATE})\s+(?:and|to|till|until|through)\s+(?P<end>{_DATE}){_AFTER_DATE}",
            re.I,
        ),
        True,
    ),
    ("since", _date_pattern(_EXCLUDING + r"(?:before|older\s+than|earlier\s+than|prior\s+to)\s+"), True),
    ("until", _date_pattern(_EXCLUDING + r"(?:after|newer\s+than|later\s+than|since)\s+"), True),
    ("replace", _date_pattern(r"\b", rf"\s*,?\s+(?:not|instead\s+of|rather\s+than)\s+{_DATE}"), True),
    (
        "range",
        re.compile(
            rf"\b(?:restrict(?:ed)?|limit(?:ed)?|narrow)\s+(?:it\s+|this\s+)?to\s+(?P<date>{_DATE})\s+(?:and|to|through|-)\s+"
            rf"(?P<end>{_DATE}){_AFTER_DATE}",
            re.I,
        ),
        True,
    ),
    ("since", _date_pattern(r"\bfrom\s+", r"\s+on(?:wards?)?\b"), True),
    ("since", _date_pattern(r"\bin\s+or\s+(?:after|since)\s+"), True),
    ("until", _date_pattern(r"\bin\s+or\s+before\s+"), True),
    (
        "since",
        _date_pattern(
            r"\b(?:since|starting(?:\s+(?:in|from))?|as\s+of|no\s+earlier\s+than|not\s+before|"
            r"nothing\s+(?:older|earlier)\s+than)\s+"
        ),
        True,
    ),
    ("since", _date_pattern(r"\b", r"\s*(?:or|and)\s+(?:later|newer|after|onwards?|beyond)\b|\s+onwards?\b|\+"), True),
    (
        "until",
        _date_pattern(
            r"\b(?:until|till|up\s+to|through|no\s+later\s+than|not\s+after|"
            r"nothing\s+(?:newer|later)\s+than)\s+"
        ),
        True,
    ),
    ("until", _date_pattern(r"\b", r"\s*(?:or|and)\s+(?:earlier|older|before)\b"), True),
    ("after", _date_pattern(r"(?:\b(?:after|newer\s+than|later\s+than)\s+|\bpost-?\s*)"), True),
    ("before", _date_pattern(r"(?:\b(?:before|earlier\s+than|older\s+than|prior\s+to)\s+|\bpre-?\s*)"), True),
    ("in", _date_pattern(r"\b(?:published|released|appeared|written|came\s+out|out)\s+in\s+"), True),
    ("in", _date_pattern(r"\b(?:only|just)\s+(?:(?:the\s+)?(?:ones|papers|work)\s+)?(?:from\s+|in\s+)?"), True),
    ("in", _date_pattern(r"\b", r"\s+(?:papers|ones|work)(?:\s+only)?\b|\s+only\b"), True),
    ("since", _date_pattern(r"\bfrom\s+"), False),
    ("in", _date_pattern(r"\bin\s+"), False),
    (
        "replace",
        _date_pattern(r"\b(?:make|change|tighten|move|set|update|narrow|push|bump)\s+(?:that|it|this)\s+(?:to\s+)?"),
        True,
    ),
]
_CODE = (
    r"(?:(?:released|public|open[- ]source|available|official|runnable|an?)\s+)*(?:source\s+code|"
    r"code(?:\s+(?:links?|releases?))?|implementations?|code\s*bases?|github(?:\s+(?:links?|repos?(?:itory)?))?|repos?(?:itory)?)"
)
_CODE_FORMS = [
    (
        True,
        re.compile(
            rf"\b(?:exclude|drop|remove|hide|skip|filter\s+out)\s+(?:the\s+ones|anything|papers|those|ones|all)?\s*"
            rf"(?:without|with\s+no|that\s+(?:don'?t|do\s+not)\s+(?:have|share|release))\s*(?:{_CODE}|it)?{_CLAUSE_END}",
            re.I,
        ),
    ),
    (False, re.compile(rf"\b(?:without|with\s+no|lacking|that\s+lacks?)\s+{_CODE}{_CLAUSE_END}", re.I)),
    (
        True,
        re.compile(
            rf"\b(?:with|that\s+(?:have|has|release|share|provide)|having|which\s+(?:have|has)|have|has|need|"
            rf"providing|releasing|sharing)\s+{_CODE}{_CLAUSE_END}",
            re.I,
        ),
    ),
    (
        True,
        re.compile(
            rf"\b(?:whose\s+)?{_CODE}\s+(?:(?:is|are|was|were|has\s+been|got)\s+)?(?:out|available|released|public|"
            rf"open[- ]?sourced){_CLAUSE_END}",
            re.I,
        ),
    ),
    (True, re.compile(r"\bhas[_ ]code\s*(?:=|is)?\s*(?:true|yes)\b", re.I)),
    (
        True,
        re.compile(
            rf"\b(?:anything|something|papers|ones|any|stuff|those|work)\s+(?:with|that\s+(?:have|has)|having)\s+{_CODE}\b",
            re.I,
        ),
    ),
    (
        True,
        re.compile(
            rf"\b(?:(?:that|which)\s+)?(?:links?|linking|points?\s+to)\s+(?:to\s+)?(?:an?\s+|their\s+|its\s+)?{_CODE}"
            rf"{_CLAUSE_END}",
            re.I,
        ),
    ),
    (
        True,
        re.compile(
            r"(?:^|\b(?:only|just)\s+)(?:(?:released|public|open[- ]source|available|official)\s+)+(?:code|"
            r"implementations?|code\s*bases?|repos?)\s*(?:only|required|needed|please)?\s*[.!?]*$",
            re.I,
        ),
    ),
]
_CATEGORY = re.compile(rf"(?<![\w.])(?P<value>(?:{ARCHIVES})\.[a-z]{{2}})(?![\w.-])", re.I)
_VENUE = "|".join(VENUES)
_VENUE_FORMS = [
    re.compile(
        rf"\b(?:only|just|(?:switch|change|make)\s+(?:that|it)\s+to|limit(?:ed)?\s+(?:it\s+)?to|"
        rf"restrict(?:ed)?\s+(?:it\s+)?to|(?:accepted|published|appeared)\s+"
        rf"(?:at|to|in)|from)\s+(?:(?:the\s+)?(?:papers|ones)\s+(?:(?:accepted|published)\s+)?(?:at|in|from)\s+)?"
        rf"(?:the\s+)?(?P<value>{_VENUE})(?![\w-])(?:\s+(?:papers|ones))?(?:\s+only)?",
        re.I,
    ),
    re.compile(rf"\b(?P<value>{_VENUE})(?![\w-])\s+(?:papers|ones)\s+only\b|\b(?P<alone>{_VENUE})\s+only\b", re.I),
]
_NAME = r"[A-Z][\w'\u2019.-]*(?:\s+(?:(?:de|van|der|von|da|di|le)\s+)?[A-Z][\w'\u2019.-]*){0,2}"
_AUTHOR = re.compile(
    rf"\b(?:(?:anything|something|papers?|work|ones|stuff|articles|any)\s+(?:written\s+|authored\s+)?by|"
    rf"authored\s+by|(?:from|by)\s+(?:the\s+)?authors?)\s+(?P<value>{_NAME})(?=\s*(?:$|[?!.,;:)]|please\b|only\b|"
    rf"and\b|in\b|since\b|with\b))"
)
_ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "last": -1,
}
# "[2]", "the second one", "the last paper": a paper of the last list shown
_PAPER_REF = r"(?:\[(?P<number>\d{1,3})\]|(?:the\s+)?(?P<ordinal>" + "|".join(_ORDINALS) + r")(?:\s+(?:one|paper))?)"
_AUTHOR_ROLE = re.compile(
    rf"\b(?:with|where|having)\s+(?P<value>{_NAME})\s+(?:is\s+)?as\s+(?:an?\s+|the\s+)?(?:co-?)?author\b|"
    rf"\bauthors?\s*[:=]\s*(?P<named>{_NAME})"
)
_AUTHOR_WORK = re.compile(
    rf"\b(?:restrict(?:ed)?\s+(?:it\s+)?to|limit(?:ed)?\s+(?:it\s+)?to|only|just)\s+(?P<value>{_NAME})['\u2019]s\s+"
    r"(?:work|papers|stuff|articles)\b"
)
_AUTHOR_ALONE = re.compile(
    rf"^\s*(?:(?:and|but|ok|okay)\s+)?(?:only\s+|just\s+)?(?:(?:papers|ones|those)\s+)?by\s+(?P<value>{_NAME})"
    rf"\s*(?:please|only)?\s*[.!?]*\s*$"
)
_SAME_AUTHORS = re.compile(
    r"\b(?:by|from)\s+the\s+same\s+(?:authors?|group|team|people|lab)(?:\s+as\s+" + _PAPER_REF + ")?",
    re.I,
)
_SOURCE = re.compile(
    r"(?:\b(?:only\s+)?(?:(?:stuff|papers|ones)\s+)?(?:from|in|on|to)\s+|\bsources?\s*[:=]\s*)(?:the\s+)?"
    r"(?P<value>hf\s+daily\s+papers|"
    r"hugging\s*face\s+daily\s+papers)(?:\s+only)?\b",
    re.I,
)
_CLEAR_ALL = re.compile(
    r"\b(?:clear|drop|remove|reset|forget|lose|undo|cancel|ignore|get\s+rid\s+of|turn\s+off|no\s+more|without)\s+"
    r"(?:all\s+)?(?:of\s+)?(?:the\s+|that\s+|those\s+|these\s+|my\s+|any\s+)?(?:filters?|restrictions?|constraints?|"
    r"limits?)\b|\b(?:show|give)\s+(?:me\s+)?(?:everything|all(?:\s+(?:the\s+)?papers)?)\s+again\b|\bno\s+filters?\b|"
    r"\b(?:clear|reset|remove|drop|undo)\s+(?:it\s+all|everything|all)\b(?!\s+(?:older|newer|earlier|later|before|"
    r"after|since|until|prior|from|published|released|with|without|that|which|in|by)\b)",
    re.I,
)
_CLEAR_FIELD = re.compile(
    r"\b(?:clear|drop|remove|reset|forget|lose|undo|cancel|ignore|never\s*mind|get\s+rid\s+of|no\s+more)\s+"
    r"(?:the\s+|that\s+|this\s+|my\s+)?(?P<field>dates?|years?|time|code|categor(?:y|ies)|authors?|venues?|sources?)"
    r"(?:\s+(?:filters?|requirements?|restrictions?|constraints?|limits?))?\b|"
    r"\b(?:any|all)\s+(?P<again>years?|dates?)\s+again\b",
    re.I,
)


@dataclass(frozen=True)
class FilterRequest:
    """What one message asks of the filter: fields it removes (`clear`), values it sets, whether it asks for the
    authors of a shown paper, and the message without the request (`rest`: empty when it asks nothing else).
    `error` is set when the request names a value that cannot be one (it changes nothing then)."""

    set: dict = field(default_factory=dict)
    clear: tuple[str, ...] = ()
    same_authors: int = 0  # "by the same authors (as [n])": the position n of that paper in the last list shown
    rest: str = ""
    error: str | None = None

    @property
    def asked(self) -> bool:
        return bool(self.set or self.clear or self.same_authors or self.error)

    @property
    def only_filter(self) -> bool:
        """The message asks for a filter and nothing else: search the previous question again, filtered."""
        return self.asked and not content_words(
            " ".join(w for w in self.rest.split() if w.lower() not in REQUEST_FILLER)
        )


def read_filter_request(message: str, this_year: int | None = None) -> FilterRequest:
    """The filter change `message` asks for, if any (pure; `this_year` defaults to today's)."""
    this_year = this_year or dt.date.today().year
    message = re.sub(r"(?<!\w)w/\s*", "with ", message, flags=re.I)  # "w/ code only"
    spans: list[tuple[int, int]] = []
    found: dict = {}
    clear: list[str] = []

    def take(match: re.Match) -> None:
        spans.append(match.span())

    def free(match: re.Match) -> bool:
        return not any(start < match.end() and match.start() < end for start, end in spans)

    for match in _CLEAR_ALL.finditer(message):
        clear.append("*")
        take(match)
    for match in _CLEAR_FIELD.finditer(message):
        if free(match):
            word = (match.group("field") or match.group("again")).lower()
            clear.extend(FIELD_WORDS.get(word, FIELD_WORDS.get(word.rstrip("s"), ())))
            take(match)
    same = _SAME_AUTHORS.search(message)
    if same:
        take(same)
    for wanted, pattern in _CODE_FORMS:
        match = pattern.search(message)
        if match and free(match) and "has_code" not in found:
            found["has_code"] = wanted
            take(match)
    for match in _CATEGORY.finditer(message):
        if free(match):
            archive, _, group = match.group("value").partition(".")
            found["category"] = f"{archive.lower()}.{group.upper() if archive.lower() != 'math' else group.upper()}"
            take(match)
    for pattern in _VENUE_FORMS:
        match = pattern.search(message)
        if match and free(match) and "venue" not in found:
            value = match.group("value") or match.group("alone")
            found["venue"] = next(v for v in VENUES if v.lower() == value.lower())
            take(match)
    match = _SOURCE.search(message)
    if match and free(match):
        found["source"] = SOURCES[" ".join(match.group("value").lower().replace("huggingface", "hugging face").split())]
        take(match)
    match = next(
        (m for m in (p.search(message) for p in (_AUTHOR, _AUTHOR_ALONE, _AUTHOR_ROLE, _AUTHOR_WORK)) if m), None
    )
    if match and free(match) and not _SAME_AUTHORS.search(message):
        found["author"] = match.groupdict().get("value") or match.group("named")
        take(match)
    if "has_code" not in found:
        wanted = _code_only(_remove(message, spans))
        if wanted is not None:
            found["has_code"] = wanted
            spans.append((0, len(message)))
    error = None
    for operation, pattern, strong in _DATE_FORMS:
        for match in pattern.finditer(message):
            if not free(match):
                continue
            without = _remove(message, [*spans, match.span()])
            asks_nothing_else = not content_words(
                " ".join(w for w in without.split() if w.lower() not in REQUEST_FILLER)
            )
            if not strong and not asks_nothing_else:
                continue
            try:
                start, end = _date(match.group("date"), this_year), None
                if operation == "range":
                    end = _date(match.group("end"), this_year)
            except _NotADate as exc:
                if exc.quantity or not asks_nothing_else:
                    continue  # "up to 2048 demonstrations": a number in a content question
                error = str(exc)
                take(match)
                continue
            take(match)
            found.update(_bounds(operation, start, end))
    same_authors = _position(same) if same else 0
    if "*" in clear:
        clear = ["*"]
    if not (found or clear or same_authors or error):
        return FilterRequest(rest=message)
    return FilterRequest(found, tuple(dict.fromkeys(clear)), same_authors, _remove(message, spans), error)


_CODE_WORD = re.compile(r"\b(?:code|codebase|implementations?|repos?|repository|github)\b", re.I)
_NEGATED = re.compile(r"\b(?:not|no|without|didn'?t|don'?t|never|lacking)\b", re.I)
# Words of a message that only asks about code availability ("public code only", "I can only use things I can
# actually run, so public code only", "ones that did NOT release code").
CODE_FILLER = frozenset(
    """code codebase implementation implementations repo repos repository github public open source open-source
    release released releases ship ships shipped share shares shared publish published run runnable use usable
    things reproducible grab get download available out did pls thanks actually so where whose ones has have myself
    must should required requires require link links ok okay but i.e e.g ie eg""".split()
)


def _code_only(rest: str) -> bool | None:
    """For a message with no other request: True/False when all it asks about is (not) having code, else None."""
    if not _CODE_WORD.search(rest) or re.match(r"\s*(?:(?:what|how)\s+about|and\s+(?:for|in|on))\b", rest, re.I):
        return None  # "what about code?" asks about code as a topic
    words = [w for w in content_words(rest) if w.lower() not in REQUEST_FILLER and w.lower() not in CODE_FILLER]
    if words:
        return None
    return not _NEGATED.search(rest)


class _NotADate(ValueError):
    def __init__(self, message: str, quantity: bool = False) -> None:
        super().__init__(message)
        self.quantity = quantity


def _date(text: str, this_year: int) -> str:
    """An ISO date ("2024", "2024-06", "2024-06-01") from "2024", "june 2024", "end of 2022", "2024-6-1"."""
    words = text.lower().replace(".", " ").split()
    words = [w for w in words if w not in ("the", "end", "start", "beginning", "of")]
    month = MONTHS.get(words[0]) if len(words) == 2 else None
    parts = words[-1].split("-")
    year = int(parts[0])
    if not 1900 <= year <= this_year + 1:
        raise _NotADate(f"{year} is not a plausible year (1900 to {this_year + 1})", quantity=year > 2100)
    if month:
        return f"{year}-{month:02d}"
    numbers = [int(p) for p in parts[1:]]
    try:
        dt.date(year, *(numbers + [1] * (2 - len(numbers))))
    except ValueError:
        raise _NotADate(f"{words[-1]} is not a date (write 2024, 2024-06 or 2024-06-01)") from None
    return "-".join([str(year)] + [f"{n:02d}" for n in numbers])


def _shift(date: str, step: int) -> str:
    """The period just before (-1) or after (+1) `date`, at its precision."""
    parts = [int(p) for p in date.split("-")]
    if len(parts) == 1:
        return str(parts[0] + step)
    if len(parts) == 2:
        months = parts[0] * 12 + parts[1] - 1 + step
        return f"{months // 12}-{months % 12 + 1:02d}"
    return (dt.date(*parts) + dt.timedelta(days=step)).isoformat()


def _bounds(operation: str, start: str, end: str | None) -> dict:
    if operation == "range":
        return {"since": start, "until": end}
    if operation == "in":
        return {"since": start, "until": start}
    if operation == "replace":
        return {"date": start}
    if operation == "after":
        return {"since": _shift(start, 1)}
    if operation == "before":
        return {"until": _shift(start, -1)}
    return {operation: start}


def _remove(message: str, spans: list[tuple[int, int]]) -> str:
    kept, last = [], 0
    for start, end in sorted(spans):
        kept.append(message[last:start])
        last = max(last, end)
    kept.append(message[last:])
    return " ".join(" ".join(kept).split()).strip(" ,.;:!?-")


def apply_filter_request(current: dict, request: FilterRequest, authors: list[str] | None = None) -> dict:
    """The filter in force after `request`: cleared fields removed, then its values set. A bare date ("actually
    make that 2024") replaces the date bound last in force. `authors` (of the paper a "by the same authors"
    points at) sets `author` to the first one. Pure; the caller validates the result (`Filter.of`)."""
    updated = {} if "*" in request.clear else {k: v for k, v in current.items() if k not in request.clear}
    values = dict(request.set)
    bare = values.pop("date", None)
    if bare is not None:
        bounds = [name for name in DATE_FIELDS if name in updated] or ["since"]
        values.update({name: bare for name in bounds})
    if "since" in values or "until" in values:
        for name in DATE_FIELDS:  # a new date request replaces a bound it contradicts
            if name not in values and name in updated:
                other = values.get("since" if name == "until" else "until")
                if other and (other > updated[name] if name == "until" else other < updated[name]):
                    updated.pop(name)
    updated.update(values)
    if request.same_authors and authors:  # the caller looked up the authors of the paper it points at
        updated["author"] = authors[0]
    return updated


_MORE_LIKE = re.compile(
    r"\s*(?:show\s+(?:me\s+)?)?(?:more|papers|others?|something|anything)\s+(?:like|similar\s+to)\s+"
    r"(?:" + _PAPER_REF + r"|(?:number\s+|#)?(?P<plain>\d{1,3})|(?P<that>that(?:\s+one|\s+paper)?|this(?:\s+one)?|it))"
    r"\s*[.!?]*\s*",
    re.I,
)
_COMPARE = re.compile(
    r"\s*(?:please\s+)?compare\s+(?:papers?\s+)?(?P<numbers>\[?\d{1,3}\]?(?:\s*(?:,\s*(?:and\s+)?|and|with|to|vs\.?|"
    r"versus)\s*\[?\d{1,3}\]?)+)\s*[.!?]*\s*",
    re.I,
)
_POINTED = re.compile(
    r"\b(?:(?:tell\s+me\s+(?:more\s+)?about|what\s+about|more\s+on|open|explain|summari[sz]e|details\s+(?:of|on))\s+)?"
    r"(?:the\s+(?P<ordinal>" + "|".join(_ORDINALS) + r")\s+(?:one|paper|result|hit)|\[(?P<number>\d{1,3})\])",
    re.I,
)


@dataclass(frozen=True)
class Pointer:
    """A message that acts on papers the previous turn showed: `action` is "more like", "compare" or "about";
    `numbers` are 1-based positions in that turn's hits (-1: the last one)."""

    action: str
    numbers: tuple[int, ...]


def read_pointer(message: str) -> Pointer | None:
    """ "more like [2]", "more like the second one", "compare [1] and [3]", "tell me about the second one": the
    papers a message points at in the previous answer, or None for an ordinary question."""
    match = _MORE_LIKE.fullmatch(message)
    if match:
        return Pointer("more like", (_position(match),))
    match = _COMPARE.fullmatch(message)
    if match:
        return Pointer("compare", tuple(int(n) for n in re.findall(r"\d{1,3}", match.group("numbers"))))
    match = _POINTED.search(message)
    if match and len(content_words(_remove(message, [match.span()]))) <= 1:
        return Pointer("about", (_position(match),))
    return None


def _position(match: re.Match) -> int:
    groups = match.groupdict()
    if groups.get("number") or groups.get("plain"):
        return int(groups.get("number") or groups["plain"])
    if groups.get("ordinal"):
        return _ORDINALS[groups["ordinal"].lower()]
    return 1  # "more like that": the top paper
