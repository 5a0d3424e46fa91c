"""Export to reference managers: keys, omitted unknown fields, and a round trip through the loaders' own parsers."""

import json
from pathlib import Path

import bibtexparser
import pytest
import rispy

from paperchat.export import citation_keys, export
from paperchat.hits import Citation, Hit
from paperchat.index.errors import PaperchatError
from paperchat.index.loaders import load_paths
from paperchat.index.papers import Paper

DATA = Path(__file__).parent / "data"


def hits_of(papers):
    return [
        Hit(
            rank,
            p.id,
            p.title,
            "",
            1.0,
            None,
            None,
            None,
            None,
            Citation(
                p.title, p.url, p.pages, p.dates, p.authors, p.date, p.year, p.arxiv_id, p.doi, p.venue, p.categories
            ),
            p.abstract,
        )
        for rank, p in enumerate(papers, start=1)
    ]


@pytest.fixture
def hits():
    papers, _ = load_paths([DATA / "arxiv-snapshot.jsonl", DATA / "openalex-works.jsonl", DATA / "endnote.ris"])
    return hits_of(papers)


def test_keys_are_first_author_year_first_word_and_unique(hits):
    keys = citation_keys(hits + hits[:1])
    assert keys[0] == "lovelace2024sparse" and keys[-1] == "lovelace2024sparsea" and len(set(keys)) == len(keys)
    assert "balazs2007calculation" in keys  # accents folded


def test_bibtex_round_trip_keeps_every_field(hits):
    library = bibtexparser.parse_string(export(hits, "bibtex"))
    assert not library.failed_blocks and len(library.entries) == len(hits)
    for entry, hit in zip(library.entries, hits):
        fields = {key.lower(): field.value for key, field in entry.fields_dict.items()}
        c = hit.citation
        assert fields["title"] == hit.title and fields["abstract"] == hit.abstract
        assert fields.get("author", "") == " and ".join(c.authors) and fields.get("year", "") == str(c.year or "")
        assert (
            fields.get("doi", "") == c.doi
            and fields.get("eprint", "") == c.arxiv_id
            and fields.get("journal", "") == c.venue
        )
    perovskites = next(e for e in library.entries if e.fields_dict["title"].value.startswith("Solar"))
    assert (
        "doi" not in perovskites.fields_dict
        and perovskites.fields_dict["url"].value == "https://example.org/perovskites"
    )


def test_ris_round_trip_keeps_every_field(hits):
    records = rispy.loads(export(hits, "ris"))
    assert len(records) == len(hits)
    for record, hit in zip(records, hits):
        c = hit.citation
        assert (
            record["title"] == hit.title
            and record["abstract"] == hit.abstract
            and record.get("authors", []) == c.authors
        )
        assert (
            record.get("doi", "") == c.doi
            and record.get("year", "") == str(c.year or "")
            and record.get("journal_name", "") == c.venue
        )


def test_csljson_lists_known_fields_only(hits):
    items = json.loads(export(hits, "csljson"))
    first = items[0]
    assert (
        first["id"] == "lovelace2024sparse"
        and first["issued"] == {"date-parts": [[2024, 1, 2]]}
        and first["URL"] == "https://arxiv.org/abs/2401.01234"
    )
    assert (
        first["author"][0] == {"family": "Lovelace", "given": "Ada"}
        and "DOI" not in first
        and "container-title" not in first
    )


def test_a_title_search_link_is_not_exported_as_the_papers_url():
    paper = Paper(id="x", title="A Paper Known Only By Its Title", abstract="Nothing else is known.")
    assert paper.url.startswith("https://arxiv.org/search/")
    for fmt in ("bibtex", "ris", "csljson"):
        assert "arxiv.org/search" not in export(hits_of([paper]), fmt)


def test_unknown_export_format_is_an_error(hits):
    with pytest.raises(PaperchatError, match="choose one of: bibtex, ris, csljson"):
        export(hits, "endnote")
