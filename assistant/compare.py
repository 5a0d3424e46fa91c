"""Comparison tables: one row per paper, one column per aspect, each cell a sentence quoted from that paper's
abstract (or empty when the abstract does not say). Pure functions over the abstract's sentences: no model, no
network. Measured against blind judgments of which sentences state each aspect (`paperchat eval --aspects`).

A default aspect is read from the cues authors use to state it ("we propose", "outperforms", a URL); a sentence
takes at most the aspects it states best, so the row reads as a summary rather than one sentence five times. A
custom aspect ("compute cost") takes the sentence sharing most of its words, when one does.

With an LLM asked to (`Assistant.compare(..., write=True)`), the model words each cell and every wording is checked
against the abstract like an answer sentence: one the abstract bears out replaces the quote (the sentence that bears
it out stays its evidence); one it does not is kept beside the quote, marked, never shown as the cell.
"""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from paperchat.citations import stated_names
from paperchat.index.errors import PaperchatError
from paperchat.index.passages import split_sentences

DEFAULT_ASPECTS = ("problem", "approach", "data", "result", "code")
ASPECT_TITLES = {
    "problem": "problem",
    "approach": "approach",
    "data": "data or benchmarks",
    "result": "main result",
    "code": "code",
}

_CODE = re.compile(
    r"https?://|github\.com|gitlab|huggingface\.co|project (?:page|website)|\brepository\b|"
    r"\b(?:is|are|will be|have been|has been|be|been|made)\s+(?:made\s+)?(?:publicly\s+|freely\s+|openly\s+)?"
    r"(?:available|released|open[- ]sourced)\b|"
    r"\bwe\s+(?:also\s+)?(?:have\s+)?(?:release|released|open[- ]source|open[- ]sourced|publish|make)\b[^.]{0,60}"
    r"\b(?:code|models?|weights|data(?:sets?)?|benchmarks?|tasks|checkpoints|tool(?:kit)?|library|leaderboard)",
    re.IGNORECASE,
)
_PROPOSE = re.compile(
    r"\bwe (?:also |further |then |first )?(?:propose|introduce|present|develop|design|devise|build|construct|"
    r"formulate|contribute)|\b(?:paper|work|study|report) (?:proposes|introduces|presents|develops)\b|"
    r"\b(?:called|named|dubbed|termed)\b|\bour (?:method|approach|framework|model|system|algorithm|technique|"
    r"pipeline)\b",
    re.IGNORECASE,
)
_STUDY = re.compile(
    r"\bin this (?:paper|work|study|report|article)\b|\bwe (?:also |first )?(?:study|investigate|explore|conduct|"
    r"analy[sz]e|evaluate|train|release|curate|collect|create|leverage|adopt|employ|use|frame|revisit|tackle|"
    r"address|decompose|cast|derive|classify|formalize|offer)",
    re.IGNORECASE,
)
_APPROACH = re.compile(r"\bwe\b|\bour\b", re.IGNORECASE)
_CONTRAST = re.compile(
    r"\b(?:however|unfortunately|yet|although|though|despite|but|nevertheless|nonetheless|whereas)\b", re.IGNORECASE
)
_PROBLEM = re.compile(
    r"\bchalleng|\bproblem|\blimitation|\blimited\b|\bremains?\b|\black|\bsuffer|\bstruggl|\bignor|\bdifficult|"
    r"\bcostly\b|\bexpensive\b|\bbottleneck|\bgap\b|\bissue|\bfail|\bunclear\b|\bunder-?explored\b|\bhinder|"
    r"\bprohibitive|\binefficien|\binfeasible|\bunreliab|\bconcern|\bquestion\b|\brisk|\bneed\b|\bunable\b|"
    r"\bcannot\b|\bnot\b|\brel(?:y|ies) on\b|\bdiverge",
    re.IGNORECASE,
)
_RESULT = re.compile(
    r"\boutperform|\bachiev|\bimprov|\bsurpass|\bstate[- ]of[- ]the[- ]art\b|\bsota\b|\bresults? (?:show|demonstrate|"
    r"indicate|reveal|suggest)|\bexperiments? (?:show|demonstrate|reveal|indicate)|\bwe (?:show|find|found|"
    r"demonstrate|observe|reveal)|\bsignificant(?:ly)?\b|\d\s?%|\d+(?:\.\d+)?\s?[x×]\b|\bspeed-?up|\bbetter\b|"
    r"\bcompetitive\b|\bfewer\b|\bfaster\b|\breduc|\bboost|\bgains?\b|\beffective(?:ness)?\b|\bshows? that\b",
    re.IGNORECASE,
)
_EVALUATION = re.compile(
    r"\b(?:experiments?|experimental|evaluat\w*|benchmarks?|datasets?|tested|test sets?|corpus|corpora|"
    r"validated?|trained on|fine-tuned on|we use|using|collected|testbed|examine|explore)\b",
    re.IGNORECASE,
)
_COUNTED_DATA = re.compile(
    r"\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a dozen|dozens of|hundreds of|thousands of|"
    r"\d+(?:[.,]\d+)?[kKmM]?)\b[^.]{0,50}\b(?:benchmarks?|"
    r"datasets?|tasks?|languages|domains|articles|corpora|environments|games|problems|questions|images|videos)\b",
    re.IGNORECASE,
)
_PLACED_NAME = re.compile(
    r"\b(?:on|in|for|using|across|over|from|via|with)\s+(?:the\s+)?(?:[A-Za-z]+[ -])?[A-Z][A-Za-z]*[A-Z0-9]"
)
_DATA_KINDS = re.compile(
    r"\b(?:on|across|in|over|using|including)\b[^.]{0,80}\b(?:tasks|domains|environments|testbed|benchmarks?|"
    r"datasets?|corpora|articles|commits|forums|task|pairs|samples|documents)\b",
    re.IGNORECASE,
)
_VAGUE_DATA = re.compile(r"\b(?:various|several|multiple|diverse|many|a range of|a variety of|extensive)\b", re.I)
# "evaluated on a variety of benchmarks" says what the paper was tested on, vague as it is; "various domains" alone
# does not (chosen on the dev halves of the blind aspect sets, eval/README.md)
_TESTED_ON = re.compile(r"\b(?:experiments?|evaluat\w*|validate|test)\b", re.IGNORECASE)
# Names of kinds of models and methods, not of datasets (the normalised form of `stated_names`).
_GENERIC_NAMES = frozenset(
    "llm llms ai rl nn dnn cnn rnn gnn moe sota api apis gpu gpus cpu nlp cv ml mllm mllms vlm vlms lm lms qa "
    "rag lora peft hpo cfg kv iso".split()
)


@dataclass(frozen=True)
class Cell:
    """One paper's answer to one aspect: the quoted sentence (`sentence` its index among the abstract's sentences),
    or sentence -1 and empty text when the abstract does not say. With `written`, `text` is a model's wording that
    sentence `sentence` bears out; `unsupported` is a model's wording the abstract does not bear out."""

    aspect: str
    sentence: int
    text: str
    written: bool = False
    unsupported: str = ""

    @property
    def stated(self) -> bool:
        return self.sentence >= 0


@dataclass(frozen=True)
class Row:
    paper_id: str
    title: str
    cells: list[Cell]

    def to_dict(self) -> dict:
        return {"id": self.paper_id, "title": self.title, "cells": [asdict(cell) for cell in self.cells]}


def _first(sentences: Sequence[str], pattern: re.Pattern) -> int:
    return next((i for i, s in enumerate(sentences) if pattern.search(s)), -1)


def _best(scores: Sequence[float], earliest: bool = False) -> int:
    """The index of the highest positive score, else -1; on a tie the later sentence (results come late), or the
    earlier with `earliest` (the contribution is stated before its details)."""
    best = max(range(len(scores)), key=lambda i: (scores[i], -i if earliest else i), default=-1)
    return best if best >= 0 and scores[best] > 0 else -1


def default_cells(title: str, sentences: Sequence[str]) -> dict[str, int]:
    """The sentence (index, -1: not stated) of each default aspect in one abstract's `sentences`."""
    approach_scores = [
        3.0 * bool(_PROPOSE.search(s)) + 1.5 * bool(_STUDY.search(s)) + 0.5 * bool(_APPROACH.search(s))
        for s in sentences
    ]
    approach = _best(approach_scores, earliest=True)
    problem_scores = [
        (3.0 * bool(_CONTRAST.search(s)) + min(len(_PROBLEM.findall(s)), 2)) * (approach < 0 or i < approach)
        - 0.5 * (i == 0)  # the opening sentence is mostly background
        for i, s in enumerate(sentences)
    ]
    problem = _best(problem_scores)
    if problem < 0 and approach > 0:
        problem = approach - 1  # what comes before the contribution is what it answers
    code = _first(sentences, _CODE)
    own_names = set(stated_names(title)) | (set(stated_names(sentences[approach])) if approach >= 0 else set())
    data_scores = []
    for i, sentence in enumerate(sentences):
        names = set(stated_names(sentence)) - own_names - _GENERIC_NAMES
        placed = bool(names) and bool(_PLACED_NAME.search(sentence))  # "on GLUE", "in WebShop"
        counted = bool(_COUNTED_DATA.search(sentence))
        kinds = bool(_DATA_KINDS.search(sentence))
        vague = bool(_VAGUE_DATA.search(sentence)) and not names and not counted and not _TESTED_ON.search(sentence)
        evaluated = bool(_EVALUATION.search(sentence))
        data_scores.append(
            (2.0 * bool(names) + counted + evaluated + kinds)
            * ((evaluated or bool(_RESULT.search(sentence))) and (placed or counted or (kinds and not vague)))
            * (i != code)
        )
    data = _best(data_scores)
    result_scores = [
        len(_RESULT.findall(s)) * (1.0 + 0.5 * (i >= len(sentences) / 2)) * (i != code) * (i != approach or i == 0)
        for i, s in enumerate(sentences)
    ]
    result = _best(result_scores)
    return {"problem": problem, "approach": approach, "data": data, "result": result, "code": code}


def custom_cell(aspect: str, sentences: Sequence[str], tokens: Callable[[str], list[str]]) -> int:
    """The sentence sharing the most of a custom aspect's words (stemmed), or -1 when none shares any."""
    wanted = set(tokens(aspect))
    scores = [len(wanted & set(tokens(s))) for s in sentences]
    return _best(scores)


def compare_row(
    paper_id: str,
    title: str,
    abstract: str,
    aspects: Sequence[str] = DEFAULT_ASPECTS,
    tokens: Callable[[str], list[str]] | None = None,
) -> Row:
    """One paper's row of the table: for each aspect the quoted sentence of its abstract, or an empty cell."""
    sentences = split_sentences(abstract)
    found = default_cells(title, sentences) if sentences else {}
    cells = []
    for aspect in aspects:
        if aspect in DEFAULT_ASPECTS:
            number = found.get(aspect, -1)
        else:
            number = custom_cell(aspect, sentences, tokens or (lambda text: re.findall(r"\w+", text.lower())))
        cells.append(Cell(aspect, number, sentences[number] if number >= 0 else ""))
    return Row(paper_id, title, cells)


_NOT_STATED = re.compile(
    r"^(?:not (?:stated|mentioned|specified|given|reported|available)|none|n/?a|unknown|-+)\b", re.I
)


_DRAFT_LINE = re.compile(r"^[\s>*#\-\d.)]*([^:]{1,60}?)[\s*]*:[\s*]*(.+)$")  # "- **Problem:** wording"


def read_drafts(reply: str, aspects: Sequence[str]) -> dict[str, str]:
    """The model's wording of each aspect, from a reply of "aspect: wording" lines (an aspect by its name or its
    heading, with or without list marks and bold); an aspect it says is not stated, or leaves out, has none."""
    names = {name.lower(): aspect for aspect in aspects for name in (aspect, ASPECT_TITLES.get(aspect, aspect))}
    drafts: dict[str, str] = {}
    for line in reply.splitlines():
        found = _DRAFT_LINE.match(line)
        if not found:
            continue
        aspect, wording = names.get(found.group(1).strip(" *").lower()), found.group(2).strip(" *")
        if aspect and aspect not in drafts and wording and not _NOT_STATED.match(wording):
            drafts[aspect] = wording
    return drafts


def with_drafts(row: Row, drafts: dict[str, str], borne_out: dict[str, int]) -> Row:
    """The row with each model wording in place of the quote where the abstract bears it out (`borne_out`: aspect ->
    the sentence that does), and kept beside the quote, marked, where it does not."""
    cells = []
    for cell in row.cells:
        wording = drafts.get(cell.aspect)
        if wording is None:
            cells.append(cell)
        elif borne_out.get(cell.aspect, -1) >= 0:
            cells.append(Cell(cell.aspect, borne_out[cell.aspect], wording, written=True))
        else:
            cells.append(replace(cell, unsupported=wording))
    return Row(row.paper_id, row.title, cells)


TABLE_FORMATS = ("text", "markdown", "csv", "json")


def table_text(
    rows: Sequence[Row],
    fmt: str = "text",
    numbers: Sequence[int] | None = None,
    escape: Callable[[str], str] = lambda text: text.replace("|", "\\|"),
) -> str:
    """The table in `fmt`: text (a block per paper), markdown, csv (one row per paper, the quoted text as the cell)
    or json; in text and markdown each paper is named with its [n] (`numbers`: the chat's own, default 1, 2, ...).
    A markdown cell goes through `escape` (default: only "|"; the web chat escapes all Markdown)."""
    numbers = list(numbers) if numbers is not None else list(range(1, len(rows) + 1))
    aspects = [cell.aspect for cell in rows[0].cells] if rows else list(DEFAULT_ASPECTS)
    headings = [ASPECT_TITLES.get(aspect, aspect) for aspect in aspects]
    if fmt == "json":
        return json.dumps({"aspects": aspects, "rows": [row.to_dict() for row in rows]}, indent=2, ensure_ascii=False)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "title", *headings])
        for row in rows:
            writer.writerow([row.paper_id, row.title, *(cell.text for cell in row.cells)])
        return out.getvalue()
    if fmt == "markdown":
        lines = ["| paper | " + " | ".join(map(escape, headings)) + " |", "|" + "---|" * (len(aspects) + 1)]
        for number, row in zip(numbers, rows):
            cells = [_markdown_cell(cell, escape) for cell in row.cells]
            lines.append(f"| \\[{number}\\] {escape(' '.join(row.title.split()))} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    if fmt != "text":
        raise PaperchatError(f"unknown table format {fmt!r}; choose one of {', '.join(TABLE_FORMATS)}")
    blocks = []
    for number, row in zip(numbers, rows):
        lines = [f"[{number}] {row.title}"]
        for heading, cell in zip(headings, row.cells):
            if cell.written:
                text = f"{cell.text} (the model's words; borne out by sentence {cell.sentence + 1})"
            else:
                text = f"\u201c{cell.text}\u201d (sentence {cell.sentence + 1})" if cell.stated else "(not stated)"
            lines.append(textwrap.fill(f"{heading}: {text}", 100, initial_indent="  ", subsequent_indent="    "))
            if cell.unsupported:
                marked = f"the model's words, NOT borne out by the abstract: {cell.unsupported}"
                lines.append(textwrap.fill(marked, 100, initial_indent="    ! ", subsequent_indent="      "))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _markdown_cell(cell: Cell, escape: Callable[[str], str]) -> str:
    text = escape(" ".join(cell.text.split())) if cell.stated else "*not stated*"
    if cell.written:
        text += f" *(model; sentence {cell.sentence + 1})*"
    if cell.unsupported:
        text += f" ⚠️ *model, not borne out:* {escape(' '.join(cell.unsupported.split()))}"
    return text
