"""Researchers' formats: arXiv snapshot, Daily Papers API, OpenAlex, BibTeX, RIS; detection, mapping,
dedup across sources, filters while reading, and fuzzing of every loader."""

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paperchat.index.loaders import date_in, detect_format, ingest_filter, load_paths
from paperchat.index.papers import arxiv_id, canonical_url, doi, iso_date
from paperchat.index.plan import paper_to_record, plan_ingest

DATA = Path(__file__).parent / "data"
SAMPLES = {
    "arxiv-snapshot.jsonl": "arxiv",
    "daily-papers-api.json": "daily-papers",
    "openalex-works.jsonl": "openalex",
    "zotero.bib": "bibtex",
    "endnote.ris": "ris",
}


@pytest.mark.parametrize("name, kind", SAMPLES.items())
def test_formats_are_recognised_by_content_whatever_the_extension(tmp_path, name, kind):
    misnamed = tmp_path / "export.txt"
    shutil.copy(DATA / name, misnamed)
    assert detect_format(misnamed, misnamed.read_bytes()[:65536]) == kind


def by_id(name):
    papers, report = load_paths([DATA / name])
    return {p.id: p for p in papers}, report


def test_arxiv_snapshot_lines_become_papers_with_their_metadata():
    papers, report = by_id("arxiv-snapshot.jsonl")
    assert set(papers) == {"2401.01234", "0704.0001", "2406.05555"}
    assert [(p.line, p.message) for p in report.problems] == [
        (4, "skipped: no abstract"),
        (5, "not valid JSON (Expecting value)"),
    ]
    sparse = papers["2401.01234"]
    assert sparse.title == "Sparse Attention for Long-Context Language Models"  # hard line breaks gone
    assert sparse.abstract.startswith("We study sparse attention with $O(n \\log n)$ cost")  # LaTeX kept as written
    assert (sparse.authors, sparse.date, sparse.year, sparse.categories) == (
        ["Ada Lovelace", "Alan Turing", "Grace Hopper"],
        "2024-01-02",
        2024,
        ["cs.CL", "cs.LG"],
    )
    assert sparse.url == "https://arxiv.org/abs/2401.01234" and sparse.doi == "" and sparse.venue == ""
    old = papers["0704.0001"]
    assert (old.doi, old.venue, old.date, old.authors[0]) == (
        "10.1103/physrevd.76.013009",
        "Phys.Rev.D76:013009,2007",
        "2007-04-02",
        "C. Balázs",
    )


def test_daily_papers_api_openalex_bibtex_and_ris():
    api, report = by_id("daily-papers-api.json")
    assert set(api) == {"2406.05555", "2406.07777"} and len(report.problems) == 1
    assert (
        api["2406.05555"].code_links == ["https://github.com/example/citecheck"]
        and api["2406.05555"].date == "2024-06-06"
    )
    works, report = by_id("openalex-works.jsonl")
    (work,) = works.values()
    assert (
        work.abstract == "Despite growing interest in Open Access (OA) we estimate its prevalence."
    )  # rebuilt in word order
    assert (work.doi, work.url, work.venue, work.authors, work.date) == (
        "10.7717/peerj.4375",
        "https://doi.org/10.7717/peerj.4375",
        "PeerJ",
        ["Heather Piwowar", "Stefanie Haustein"],
        "2018-02-13",
    )
    assert len(report.problems) == 1
    bib, report = by_id("zotero.bib")
    assert (
        set(bib) == {"2401.01234", "doi:10.5555/sym.2023.42"} and len(report.problems) == 2
    )  # no abstract; unreadable entry
    assert (
        bib["2401.01234"].title == "Sparse Attention for Long-Context Language Models"
        and bib["2401.01234"].date == "2024-01"
    )
    assert bib["doi:10.5555/sym.2023.42"].venue == "Proceedings of the Conference on Learning" and bib[
        "doi:10.5555/sym.2023.42"
    ].authors == ["Emmy Noether"]
    ris, _ = by_id("endnote.ris")
    assert ris["doi:10.5555/sym.2023.42"].date == "2023-05-02" and ris["doi:10.5555/sym.2023.42"].categories == [
        "graphs",
        "symmetry",
    ]
    perovskites = next(p for p in ris.values() if p.title.startswith("Solar"))
    assert (
        perovskites.url == "https://example.org/perovskites" and perovskites.date == "2022" and perovskites.year == 2022
    )


def test_the_same_paper_from_several_sources_is_one_paper_with_every_source():
    papers, report = load_paths(
        [DATA / "arxiv-snapshot.jsonl", DATA / "daily-papers-api.json", DATA / "zotero.bib", DATA / "endnote.ris"]
    )
    ids = sorted(p.id for p in papers)
    assert ids.count("2401.01234") == 1 and ids.count("2406.05555") == 1 and ids.count("doi:10.5555/sym.2023.42") == 1
    rag = next(p for p in papers if p.id == "2406.05555")
    assert rag.pages == ["arxiv-snapshot.jsonl", "daily-papers-api.json"] and report.duplicates == 3


def test_a_paper_stored_from_one_source_is_updated_in_place_from_another():
    pages_paper = load_paths([DATA / "zotero.bib"])[0]
    stored = {p.id: paper_to_record(p, 0)[1] for p in pages_paper}
    arxiv_papers = load_paths([DATA / "arxiv-snapshot.jsonl"])[0]
    plan = plan_ingest(stored, arxiv_papers)
    assert plan.added == 2 and plan.updated_metadata == 1  # 2401.01234 (from BibTeX) gains the snapshot as a source
    assert plan.metadata[0][0] == "2401.01234" and json.loads(plan.metadata[0][1]["pages"]) == [
        "zotero.bib",
        "arxiv-snapshot.jsonl",
    ]


def test_filters_keep_a_slice_while_reading():
    keep = ingest_filter(["cs.CL"], since="2024-01-01")
    papers, report = load_paths([DATA / "arxiv-snapshot.jsonl"], keep=keep)
    assert (
        sorted(p.id for p in papers) == ["2401.01234", "2406.05555"]
        and report.filtered == 1
        and "1 left out by the filters" in report.summary()
    )
    assert [p.id for p in load_paths([DATA / "arxiv-snapshot.jsonl"], keep=ingest_filter(until="2023"))[0]] == [
        "0704.0001"
    ]
    assert (
        date_in("2024", "2024-03-01", None)
        and not date_in("2023", "2024-03-01", None)
        and not date_in("", "2024", None)
    )
    assert date_in("2024-06-06", "2024-06", "2024-06") and not date_in("2024-07-01", None, "2024-06")


def test_ids_links_and_dates_are_normalised():
    assert (
        arxiv_id("arXiv:2406.01234v3") == "2406.01234"
        and arxiv_id("hep-th/9901001v1") == "hep-th/9901001"
        and arxiv_id("W123") == ""
    )
    assert (
        doi("https://doi.org/10.1000/ABC.1") == "10.1000/abc.1"
        and doi("doi:10.1000/x.") == "10.1000/x"
        and doi("not a doi") == ""
    )
    assert (
        iso_date("2024-06-06T17:59:58Z") == "2024-06-06" and iso_date("2024") == "2024" and iso_date("June 2024") == ""
    )
    assert canonical_url("", "10.1000/x", "T") == "https://doi.org/10.1000/x" and canonical_url(
        "", "", "A B"
    ).startswith("https://arxiv.org/search/")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000), kind=st.sampled_from(sorted(set(SAMPLES.values()))))
def test_random_bytes_never_crash_a_format_loader(tmp_path, data, kind):
    path = tmp_path / "random.input"
    path.write_bytes(data)
    papers, report = load_paths([path], fmt=kind)
    assert all(p.title and p.abstract for p in papers)


records = st.dictionaries(
    st.sampled_from(
        [
            "id",
            "title",
            "abstract",
            "authors_parsed",
            "versions",
            "categories",
            "doi",
            "summary",
            "paper",
            "abstract_inverted_index",
            "authorships",
            "publication_date",
            "primary_location",
        ]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=8,
    ),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(records, max_size=5), kind=st.sampled_from(["arxiv", "openalex", "daily-papers", "jsonl"]))
def test_random_json_records_are_kept_or_reported_never_a_crash(tmp_path, lines, kind):
    path = tmp_path / "random.json"
    path.write_text(json.dumps(lines) if kind == "daily-papers" else "\n".join(json.dumps(line) for line in lines))
    papers, report = load_paths([path], fmt=kind)
    assert len(papers) + len(report.problems) >= min(1, len(lines)) or not lines


def test_a_broken_big_file_lists_its_first_problems_and_counts_the_rest(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(
        "{not json\n" * 1500 + json.dumps({"id": "ok", "title": "Kept", "abstract": "The one good line."}) + "\n"
    )
    papers, report = load_paths([path])
    assert [p.id for p in papers] == ["ok"] and len(report.problems) == 1001
    assert (
        report.problems[-1].message == "500 more problem(s) in this file not listed"
        and "skipped 1001 problem(s)" in report.summary()
    )
