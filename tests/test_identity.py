"""Paper identity and provenance merge: one rule for the loader and the ingest plan.

Pure tests on hand-made papers, then the end-to-end reproducer of an ingest that could never finish
(real embedded Chroma, the real model).
"""

import json

import pytest

from conftest import write
from paperchat.index.loaders import load_paths
from paperchat.index.papers import Paper, identity_keys, merge_papers, title_id
from paperchat.index.plan import paper_to_record, plan_ingest

TITLE = "Sparse Attention for Long Inputs"
ABSTRACT = "We make attention sparse so that long inputs fit. It is fast."


def stored_paper() -> Paper:
    return Paper(
        id=title_id(TITLE),
        title=TITLE,
        abstract=ABSTRACT,
        pages=["first.jsonl"],
        dates=[""],
        arxiv_id="2401.01234",
        doi="10.1234/abc",
    )


def arxiv_only(page: str = "second.jsonl") -> Paper:
    title = "Long Inputs, Sparse Attention"
    return Paper(
        id=title_id(title),
        title=title,
        abstract="Attention over long inputs, made sparse.",
        pages=[page],
        dates=[""],
        arxiv_id="2401.01234",
    )


def doi_only(page: str = "second.jsonl") -> Paper:
    title = "Sparse attention (journal version)"
    return Paper(
        id=title_id(title),
        title=title,
        abstract="The journal version of sparse attention.",
        pages=[page],
        dates=[""],
        doi="10.1234/abc",
    )


def apply(plan, existing: dict[str, dict]) -> dict[str, dict]:
    """What Chroma holds after a plan is written (papers without passages are recorded as fully embedded)."""
    held = dict(existing)
    for paper in plan.embed:
        held[paper.id] = paper_to_record(paper, 0)[1]
    for doc_id, metadata in plan.metadata:
        held[doc_id] = metadata
    return held


# --- the identity rule ------------------------------------------------------------------------


def test_identity_keys_are_arxiv_id_doi_then_the_given_id_or_else_the_title():
    derived = Paper(id=title_id("Foo: Bar!"), title="Foo: Bar!", abstract="x", arxiv_id="2401.01234", doi="10.1/x")
    assert identity_keys(derived) == ["arxiv:2401.01234", "doi:10.1/x", "title:foo bar"]
    from_arxiv = Paper(id="2401.01234", title="Foo Bar", abstract="x", arxiv_id="2401.01234")
    assert identity_keys(from_arxiv) == [
        "arxiv:2401.01234",
        "title:foo bar",
    ]  # an id made from the arXiv id is not a given one
    from_doi = Paper(id="doi:10.1/x", title="Foo Bar", abstract="x", doi="10.1/x")
    assert identity_keys(from_doi) == ["doi:10.1/x", "title:foo bar"]
    given = Paper(
        id="d17", title="Foo Bar", abstract="x"
    )  # a BEIR document: its id says which paper it is, not its title
    assert identity_keys(given) == ["id:d17"]
    assert (
        identity_keys(Paper(id=title_id("?!"), title="?!", abstract="x")) == []
    )  # no title words: nothing to meet it again by


def test_accents_case_and_punctuation_do_not_change_the_title_key():
    assert identity_keys(
        Paper(id=title_id("Schrödinger Bridges"), title="Schrödinger Bridges", abstract="x")
    ) == identity_keys(Paper(id=title_id("schrodinger  bridges."), title="schrodinger  bridges.", abstract="x"))


# --- the merge ---------------------------------------------------------------------------------


def test_merge_accumulates_sources_and_takes_the_newer_values():
    older = Paper(
        id="p",
        title="Old title",
        abstract="Old.",
        pages=["a.txt", "b.txt"],
        dates=["Jun 6", ""],
        authors=["Ada"],
        venue="NeurIPS",
        code_links=["https://github.com/a/b"],
    )
    newer = Paper(
        id="other-id",
        title="New title",
        abstract="New.",
        pages=["b.txt", "c.bib"],
        dates=["Jun 9", ""],
        arxiv_id="2401.01234",
    )
    merged = merge_papers(older, newer)
    assert merged.id == "p"  # the paper keeps the id it is known by
    assert (merged.title, merged.abstract) == ("New title", "New.")  # the newer text is the text
    assert merged.pages == ["a.txt", "b.txt", "c.bib"] and merged.dates == [
        "Jun 6",
        "Jun 9",
        "",
    ]  # a page seen again takes its new date
    assert (merged.arxiv_id, merged.authors, merged.venue) == (
        "2401.01234",
        ["Ada"],
        "NeurIPS",
    )  # gaps are filled, nothing is lost
    assert merged.url == "https://arxiv.org/abs/2401.01234" and merged.code_links == ["https://github.com/a/b"]
    assert older.pages == ["a.txt", "b.txt"]  # the inputs are left as they were


def test_a_title_search_link_does_not_replace_a_real_one():
    older = Paper(id="p", title="T", abstract="x", url="https://example.org/paper", pages=["a"], dates=[""])
    assert (
        merge_papers(older, Paper(id="p", title="T", abstract="y", pages=["b"], dates=[""])).url
        == "https://example.org/paper"
    )


# --- the plan: records that meet one stored paper ------------------------------------------------


def test_records_meeting_one_stored_paper_become_one_update_with_every_source():
    stored = stored_paper()
    existing = {stored.id: paper_to_record(stored, 0)[1]}
    plan = plan_ingest(existing, [arxiv_only("a.jsonl"), doi_only("b.jsonl")])
    assert [paper.id for paper in plan.embed] == [stored.id] and plan.metadata == []
    assert (plan.added, plan.updated, plan.unchanged) == (0, 1, 0)
    assert plan.embed[0].pages == ["first.jsonl", "a.jsonl", "b.jsonl"]
    assert (plan.embed[0].arxiv_id, plan.embed[0].doi) == ("2401.01234", "10.1234/abc")


def test_ingesting_the_same_records_again_changes_nothing():
    stored = stored_paper()
    existing = {stored.id: paper_to_record(stored, 0)[1]}
    incoming = [arxiv_only("a.jsonl"), doi_only("b.jsonl")]
    after = apply(plan_ingest(existing, incoming), existing)
    again = plan_ingest(after, incoming)
    assert (again.added, again.updated, again.updated_metadata, again.unchanged) == (0, 0, 0, 1)


SOURCES = {
    "bib": Paper(
        id="2401.01234",
        title="Sparse Attention",
        abstract="From the BibTeX export.",
        pages=["lib.bib"],
        dates=[""],
        arxiv_id="2401.01234",
    ),
    "page": Paper(
        id=title_id("Sparse attention"),
        title="Sparse attention",
        abstract="From the listing.",
        pages=["HF Jun 6"],
        dates=["Jun 6"],
    ),
    "ris": Paper(
        id="doi:10.1234/abc",
        title="Sparse Attention.",
        abstract="From the RIS export.",
        pages=["lib.ris"],
        dates=[""],
        doi="10.1234/abc",
    ),
    "beir": Paper(
        id="d17",
        title="Sparse Attention",
        abstract="A BEIR document that happens to share the title.",
        pages=["corpus.jsonl"],
        dates=[""],
    ),
}


@pytest.mark.parametrize(
    "order", [["bib", "page", "ris", "beir"], ["page", "bib", "beir", "ris"], ["ris", "beir", "page", "bib"]]
)
def test_one_load_and_one_ingest_per_file_find_the_same_papers(tmp_path, order):
    files = []
    for number, name in enumerate(order):
        paper = SOURCES[name]
        record = {"title": paper.title, "abstract": paper.abstract, "arxiv_id": paper.arxiv_id, "doi": paper.doi}
        if name == "beir":
            record["_id"] = paper.id
        files.append(write(tmp_path / f"{number}-{name}.jsonl", json.dumps(record) + "\n"))
    at_once = load_paths(files)[0]
    held: dict[str, dict] = {}
    for file in files:
        held = apply(plan_ingest(held, load_paths([file])[0]), held)
    assert sorted((p.id, tuple(p.pages)) for p in at_once) == sorted(
        (doc_id, tuple(json.loads(m["pages"]))) for doc_id, m in held.items()
    )
    assert len(at_once) == 2  # the BEIR document stays itself; the three sources of the paper are one


# --- end to end: real Chroma, the real model -----------------------------------------------------

FIRST = {"title": TITLE, "abstract": ABSTRACT, "arxiv_id": "2401.01234", "doi": "10.1234/abc"}
BY_ARXIV_ID = {
    "title": "Long Inputs, Sparse Attention",
    "abstract": "Over long inputs, made sparse.",
    "arxiv_id": "2401.01234",
}
BY_DOI = {"title": "Sparse attention (journal version)", "abstract": "The journal version.", "doi": "10.1234/abc"}


def jsonl(path, *records: dict):
    return write(path, "".join(json.dumps(record) + "\n" for record in records))


@pytest.mark.slow
@pytest.mark.parametrize(
    "split, write_batch", [(False, 1024), (True, 1)], ids=["one-file-one-batch", "two-files-two-batches"]
)
def test_records_meeting_one_stored_paper_are_ingested_as_one_and_keep_every_source(tmp_path, split, write_batch):
    from paperchat import Assistant

    if split:
        second = [jsonl(tmp_path / "a.jsonl", BY_ARXIV_ID), jsonl(tmp_path / "b.jsonl", BY_DOI)]
    else:
        second = [jsonl(tmp_path / "second.jsonl", BY_ARXIV_ID, BY_DOI)]
    assistant = Assistant.open(
        tmp_path / "idx",
        bootstrap=False,
        load_model=False,
        progress=False,
        notify=lambda message: None,
        write_batch=write_batch,
    )
    assistant.ingest([jsonl(tmp_path / "first.jsonl", FIRST)], progress=False)
    _, report = assistant.ingest(second, progress=False)  # was: DuplicateIDError in upsert, on every run
    assert (report.added, report.updated, report.total) == (0, 1, 1)
    held = assistant.store.repository.existing_metadata()
    assert list(held) == [title_id(TITLE)]
    assert json.loads(held[title_id(TITLE)]["pages"]) == [
        "first.jsonl",
        *(path.name for path in second),
    ]  # none overwritten
    _, again = assistant.ingest(second, progress=False)
    assert (again.added, again.updated, again.updated_metadata, again.unchanged) == (0, 0, 0, 1)
