"""Render the Python API's results as HTML / Markdown for the web chat. Presentation only.

Everything that comes from a corpus file (titles, abstracts, urls, page names) is data: it is
escaped wherever it lands, HTML or Markdown, and only http(s) urls become links.
"""

from __future__ import annotations

import html
import re
import urllib.parse

from paperchat import Hit
from paperchat.chat import Answer, SentenceEvidence, describe_searched
from paperchat.citations import CheckedSentence
from paperchat.compare import table_text
from paperchat.filters import Filter
from paperchat.index.papers import web_url
from paperchat.snippets import split_sentences
from paperchat.watch import DigestEntry, Watched

_MARKED = re.compile(r"\*\*(.+?)\*\*")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")


def escape_markdown(text: str) -> str:
    """Text that Markdown shows literally: no emphasis, link, image or HTML can come out of it."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def markdown_link(title: str, url: str) -> str:
    """A Markdown link to an http(s) url, or the escaped title alone when the url is not one."""
    target = web_url(url)
    if target is None:
        return escape_markdown(title)
    return f"[{escape_markdown(title)}](<{urllib.parse.quote(target, safe=':/?#@!$&*+,;=%~')}>)"


def html_link(text_html: str, url: str) -> str:
    """`text_html` linked to an http(s) url, or left as plain text when the url is not one."""
    target = web_url(url)
    return (
        f"<a href='{html.escape(target)}' target='_blank' rel='noopener noreferrer'>{text_html}</a>"
        if target
        else text_html
    )


def highlight(snippet: str) -> str:
    """Escape the snippet, then turn its **term** markers into <mark> tags."""
    return _MARKED.sub(r"<mark>\1</mark>", html.escape(snippet))


def _byline_and_sources(hit: Hit) -> str:
    byline = hit.citation.byline()
    return (html.escape(byline) + " · " if byline else "") + html.escape(hit.citation.sources_line())


def cite_link(source: int, sentence: int | None = None) -> str:
    """A clickable [n] (the page's script brings source n into view, its sentence `sentence` marked)."""
    target = f"ev-{source}-{sentence}" if sentence is not None and sentence >= 0 else f"source-{source}"
    return f"<a class='cite' href='#{target}'>[{source}]</a>"  # the chat keeps href and class, not data-*


def abstract_with_evidence(hit: Hit, supporting: set[int]) -> str:
    """The whole abstract, each sentence addressable (`ev-RANK-SENTENCE`), the ones that bear out the answer
    highlighted."""
    spans = [
        f"<span class='{'sentence support' if i in supporting else 'sentence'}' id='ev-{hit.rank}-{i}'>"
        f"{html.escape(text)}</span>"
        for i, text in enumerate(split_sentences(hit.abstract))
    ]
    return (
        "<details class='abstract' open><summary>abstract, the sentences the answer rests on marked</summary>"
        + " ".join(spans)
        + "</details>"
    )


def source_card(hit: Hit, supporting: set[int] | None = None) -> str:
    code = hit.metadata.get("code_links") or []
    code_html = " · ".join(html_link("code", link) for link in code if web_url(link))
    why = (
        f"<details class='why'><summary>why #{hit.rank}</summary>"
        f"<table><tr><th></th><th>rank</th><th>score</th></tr>"
        f"<tr><td>BM25</td><td>{hit.bm25_rank or '–'}</td><td>{hit.bm25 if hit.bm25 is not None else '–'}</td></tr>"
        f"<tr><td>vector</td><td>{hit.vector_rank or '–'}</td>"
        f"<td>{hit.vector if hit.vector is not None else '–'}</td></tr>"
        f"<tr><td>fused</td><td>{hit.rank}</td><td>{hit.score}</td></tr></table></details>"
    )
    evidence = abstract_with_evidence(hit, supporting) if supporting else ""
    return (
        f"<div class='source' id='source-{hit.rank}'><div class='source-title'>[{hit.rank}] "
        f"{html_link(html.escape(hit.title), hit.citation.url)}</div>"
        f"<div class='snippet'>{highlight(hit.snippet)}</div>{evidence}"
        f"<div class='meta'>{_byline_and_sources(hit)}{' · ' + code_html if code_html else ''}</div>{why}</div>"
    )


def sources_panel(hits: list[Hit], evidence: list[SentenceEvidence] | None = None) -> str:
    """The source cards; with an answer's `evidence`, each cited abstract in full, its supporting sentences marked."""
    if not hits:
        return "<div class='sources-empty'>Sources appear here after a question.</div>"
    supporting: dict[int, set[int]] = {}
    for item in evidence or []:
        for quote in item.quotes:
            supporting.setdefault(quote.source, set()).add(quote.sentence)
    return "<div class='sources'>" + "".join(source_card(h, supporting.get(h.rank)) for h in hits) + "</div>"


def evidenced_markdown(answer: Answer) -> str:
    """The answer's sentences, each [n] a link to the sentence of source n that bears it out."""
    if answer.written_by:
        return " ".join(
            sentence_markdown(s, quoted={q.source: q.sentence for q in e.quotes})
            for s, e in zip(answer.sentences, answer.evidence)
        )
    return " ".join(
        escape_markdown(e.sentence) + " " + "".join(cite_link(q.source, q.sentence) for q in e.quotes)
        for e in answer.evidence
    )


def searched_markdown(answer: Answer) -> str:
    """The line saying what a follow-up searched ('' for a plain question), with the blank line after it."""
    return f"*Searched:* {escape_markdown(describe_searched(answer.searched))}\n\n" if answer.rewritten else ""


def sentence_markdown(sentence: CheckedSentence, quoted: dict[int, int] | None = None) -> str:
    """A written sentence with its citations (given `quoted`, the sentence of each source that bears it out, as
    links to it); an unsupported one is marked, naming the source that supports it if any."""
    markers = (
        "".join(cite_link(n, quoted.get(n)) for n in sentence.cited)
        if quoted is not None
        else escape_markdown(sentence.markers())
    )
    text = escape_markdown(sentence.text) + (" " + markers if sentence.cited else "")
    if sentence.supported:
        return text
    what = "not supported by its citation" if sentence.cited else "no citation"
    if sentence.unmatched:
        what += f", which does not mention {escape_markdown(', '.join(sentence.unmatched[:3]))}"
    hint = f"see \\[{sentence.best}\\]" if sentence.best else "no source here supports it"
    return f"{text} ⚠️ *({what}; {hint})*"


def saved_markdown(watched: list[Watched]) -> str:
    """The saved questions, numbered as "Remove" and `paperchat watch remove` take them."""
    if not watched:
        return "*No saved questions yet: ask one in the chat and press **Watch this question**.*"
    return "\n".join(
        f"{n}. {escape_markdown(w.question)}"
        + (f" *({escape_markdown(Filter.of(w.filters).describe())})*" if w.filters else "")
        for n, w in enumerate(watched, start=1)
    )


def digest_markdown(entries: list[DigestEntry]) -> str:
    """A digest: under each saved question, the new papers that answer it, best first, each with its evidence."""
    if not entries:
        return saved_markdown([])
    parts = []
    for entry in entries:
        lines = [f"#### {escape_markdown(entry.question)}"]
        lines += [
            f"{n}. {markdown_link(paper.hit.title, paper.hit.citation.url)} ({paper.score:.2f}): "
            f"\u201c{escape_markdown(paper.evidence)}\u201d"
            for n, paper in enumerate(entry.papers, start=1)
        ] or ["*No new paper answers it.*"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def reply_markdown(answer: Answer) -> str:
    """The chat bubble: what was searched (for follow-ups), the cited answer (a written one with its
    check marks), notices, and numbered source links."""
    parts = [searched_markdown(answer).rstrip()] if answer.rewritten else []
    if answer.evidence and not answer.table:
        parts.append(evidenced_markdown(answer))
    elif answer.written_by:
        parts.append(" ".join(sentence_markdown(s) for s in answer.sentences))
    elif answer.table:
        numbers = [h.rank for h in answer.hits]
        parts.append(table_text(answer.table, "markdown", numbers, escape=escape_markdown).rstrip())
    else:
        parts.append(escape_markdown(answer.text))
    parts += [f"*Note:* {escape_markdown(notice)}" for notice in answer.notices]
    if answer.withheld:
        written = " ".join(sentence_markdown(s) for s in answer.sentences)
        parts.append(f"<details><summary>The withheld written answer</summary>\n\n{written}\n\n</details>")
    if answer.written_by:
        parts.append(f"*Written by {escape_markdown(answer.written_by)}; each citation checked against its abstract.*")
    if answer.hits:
        parts.append("  \n".join(f"\\[{h.rank}\\] {markdown_link(h.title, h.citation.url)}" for h in answer.hits))
    return "\n\n".join(parts)


CSS = """
.source {border-bottom: 1px solid #e5e7eb; padding: 8px 0;}
.source-title {font-weight: 600;}
.snippet {margin: 4px 0; font-size: 0.92em;}
.snippet mark {background: #fde68a; padding: 0 1px;}
.meta {color: #6b7280; font-size: 0.85em;}
.why table {font-size: 0.85em; margin-top: 4px;}
.why td, .why th {padding: 0 8px;}
.abstract {font-size: 0.88em; margin: 4px 0;}
.abstract summary {color: #6b7280; cursor: pointer;}
.sentence.support {background: #dbeafe;}
.sentence.active, .source.active {outline: 2px solid #2563eb; background: #bfdbfe;}
a.cite {text-decoration: none; font-weight: 600;}
"""

# Clicking a [n] in an answer brings source n into view in the sources panel, the sentence it rests on marked.
SCRIPT = r"""<script>
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a.cite");
  if (!link) return;
  event.preventDefault();
  event.stopPropagation();
  const found = (link.getAttribute("href") || "").match(/^#(?:ev-(\d+)-(\d+)|source-(\d+))$/);
  if (!found) return;
  const card = document.getElementById("source-" + (found[1] || found[3]));
  if (!card) return;
  const details = card.querySelector("details.abstract");
  if (details) details.open = true;
  document.querySelectorAll(".sentence.active, .source.active").forEach((el) => el.classList.remove("active"));
  const sentence = found[1] ? document.getElementById("ev-" + found[1] + "-" + found[2]) : null;
  const target = sentence || card;
  target.classList.add("active");
  target.scrollIntoView({block: "center"});
}, true);
</script>"""
