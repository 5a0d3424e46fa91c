"""The web chat's HTML and Markdown (`paperchat.ui.render`) on hand-made hits: corpus text is escaped
wherever it lands and only http(s) urls become links. No browser and no model: the HTML is read back
with the standard library's parser, so a tag or attribute that leaks out of the escaping is seen."""

import re
from html.parser import HTMLParser

import pytest

from paperchat import Citation, Hit
from paperchat.chat import Answer, Formulation
from paperchat.citations import CheckedSentence
from paperchat.ui.render import (
    digest_markdown,
    escape_markdown,
    highlight,
    html_link,
    markdown_link,
    reply_markdown,
    saved_markdown,
    source_card,
)
from paperchat.watch import DigestEntry, DigestPaper, Watched

CARD_TAGS = {"div", "a", "mark", "details", "summary", "table", "tr", "th", "td"}
MARKDOWN_SPECIAL = r"\\`*_{}\[\]()<>#+\-.!|~&"  # what Markdown could read as syntax
HOSTILE_HTML = "<script>alert(1)</script><img src=x onerror='alert(2)'>"


class Elements(HTMLParser):
    """The start tags of an HTML fragment with their attributes, and its text."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text = ""
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text += data


def hit(
    title: str = "A paper",
    url: str = "https://arxiv.org/abs/2401.01234",
    snippet: str = "About **graphs**.",
    code=(),
    **citation,
) -> Hit:
    return Hit(
        rank=1,
        id="p1",
        title=title,
        snippet=snippet,
        score=0.5,
        bm25=1.0,
        vector=0.4,
        bm25_rank=1,
        vector_rank=2,
        citation=Citation(title=title, url=url, **citation),
        metadata={"code_links": list(code)},
    )


def test_html_in_title_snippet_authors_venue_and_pages_stays_text():
    card = source_card(
        hit(
            title=f"Title {HOSTILE_HTML}",
            snippet=f"Snippet {HOSTILE_HTML}",
            authors=[f"Eve {HOSTILE_HTML}"],
            venue=f"<b>Venue</b>{HOSTILE_HTML}",
            date="2024-06-01",
            pages=[f"page {HOSTILE_HTML}"],
            dates=["Jun 1"],
        )
    )
    elements = Elements(card)
    assert {tag for tag, _ in elements.tags} <= CARD_TAGS
    assert not [attrs for _, attrs in elements.tags if any(name.startswith("on") for name in attrs)]
    assert elements.text.count("<script>alert(1)</script>") == 5 and elements.text.count("onerror='alert(2)'") == 5


def test_snippet_markers_become_mark_tags_around_escaped_text():
    assert (
        highlight("uses **LoRA** and <b>**x<y**</b>")
        == "uses <mark>LoRA</mark> and &lt;b&gt;<mark>x&lt;y</mark>&lt;/b&gt;"
    )


@pytest.mark.parametrize(
    "url", ["https://arxiv.org/abs/2401.01234", "http://example.org/paper?id=1&v=2", "HTTPS://Example.org/x"]
)
def test_http_and_https_urls_become_links(url):
    ((tag, attrs),) = Elements(html_link("code", url)).tags
    assert tag == "a" and attrs["href"].lower() == url.lower() and attrs["rel"] == "noopener noreferrer"
    assert markdown_link("Title", url).startswith("[Title](<")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "ftp://example.org/paper.pdf",
        "/abs/2401.01234",
        "arxiv.org/abs/2401.01234",
        "//evil.example/x",
        "",
    ],
)
def test_other_schemes_and_relative_urls_stay_text(url):
    assert html_link("code", url) == "code"
    assert markdown_link("Title [x]", url) == escape_markdown("Title [x]") == "Title \\[x\\]"
    card = source_card(hit(url=url, code=[url]))
    assert not [attrs for tag, attrs in Elements(card).tags if tag == "a"]


@pytest.mark.parametrize("quote", ["'", '"'])
def test_a_quote_in_a_url_cannot_leave_the_href_attribute(quote):
    url = f"https://example.org/a{quote} onmouseover={quote}alert(1)"
    ((tag, attrs),) = Elements(html_link("code", url)).tags
    assert tag == "a" and set(attrs) == {"href", "target", "rel"} and attrs["href"] == url


def test_a_markdown_link_target_cannot_be_closed_by_the_url():
    link = markdown_link("Title", "https://example.org/a>)[x](javascript:alert(1))")
    target = link[link.index("](<") + 3 : -2]
    assert link.endswith(">)") and not set(target) & set("<>() ")


def test_escaped_markdown_is_only_plain_characters_and_escaped_specials():
    text = "**bold** _it_ `code` [link](javascript:x) ![img](x.png) <script>x</script> # h | ~s~ &amp; \\ {a}+-!"
    escaped = escape_markdown(text)
    assert re.fullmatch(rf"(?:\\[{MARKDOWN_SPECIAL}]|[^{MARKDOWN_SPECIAL}])*", escaped), escaped
    assert re.sub(r"\\(.)", r"\1", escaped) == text


def test_the_chat_bubble_escapes_answer_notices_titles_and_what_was_searched():
    sentence = CheckedSentence(
        text="It uses <img src=x onerror=alert(1)>", cited=[1], supported=False, unmatched=["<b>9</b>"]
    )
    answer = Answer(
        message="m",
        query="q",
        rewritten=True,
        relevant=True,
        text="unused",
        hits=[hit(title="[T](javascript:x)", url="data:x")],
        searched=[Formulation("<i>q</i>")],
        written_by="<model>",
        sentences=[sentence],
        notices=["*note* <u>"],
    )
    bubble = reply_markdown(answer)
    assert not re.search(r"(?<!\\)<", bubble) and not re.search(r"(?<!\\)\]\(", bubble)  # no tag opens, no link forms
    assert (
        "\\<i\\>q\\</i\\>" in bubble
        and "\\<model\\>" in bubble
        and "\\*note\\* \\<u\\>" in bubble
        and "\\<b\\>9" in bubble
    )
    assert "\\<img src=x onerror=alert\\(1\\)\\>" in bubble and "\\[T\\]\\(javascript:x\\)" in bubble


def test_the_byline_shows_three_authors_then_et_al_and_each_page_with_its_date():
    citation = Citation(
        title="t",
        url="",
        authors=["Ana Alves", "Bo Berg", "Cy Cole", "Di Dunn"],
        venue="ACL",
        date="2024-06-01",
        pages=["Daily Papers Jun 6", "mine.jsonl"],
        dates=["Jun 6", "2024-06-07"],
    )
    assert citation.byline() == "Ana Alves, Bo Berg, Cy Cole et al., ACL, 2024-06-01"
    assert citation.sources_line() == "Daily Papers Jun 6; mine.jsonl (2024-06-07)"
    assert (
        Citation(title="t", url="", authors=["Ana Alves"]).byline() == "Ana Alves"
        and Citation(title="t", url="").byline() == ""
    )
    card = Elements(
        source_card(hit(**{name: getattr(citation, name) for name in ("authors", "venue", "date", "pages", "dates")}))
    )
    assert (
        "Ana Alves, Bo Berg, Cy Cole et al., ACL, 2024-06-01 · Daily Papers Jun 6; mine.jsonl (2024-06-07)" in card.text
    )


def test_saved_questions_and_the_digest_escape_questions_titles_and_evidence():
    hostile = "<img src=x onerror=alert(1)> [x](javascript:y)"
    saved = saved_markdown([Watched(hostile, {"author": "<b>"}), Watched("plain")])
    digest = digest_markdown(
        [
            DigestEntry(hostile, {}, [DigestPaper(hit(title=hostile, url="javascript:z"), 0.91, hostile)]),
            DigestEntry("plain", {}, []),
        ]
    )
    for markdown in (saved, digest):
        assert not re.search(r"(?<!\\)<", markdown) and not re.search(r"(?<!\\)\]\(", markdown)
    assert saved.splitlines() == [f"1. {escape_markdown(hostile)} *(author={escape_markdown('<b>')})*", "2. plain"]
    assert "(0.91)" in digest and "*No new paper answers it.*" in digest
    linked = digest_markdown([DigestEntry("q", {}, [DigestPaper(hit(title="T"), 0.8, "e")])])
    assert "[T](<https://arxiv.org/abs/2401.01234>)" in linked
