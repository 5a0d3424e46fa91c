"""Segments: an ingest adds one, a removal marks rows, scores stay those of a full rebuild, replicas load only what
is new, a gap is rebuilt in full, and a merge folds them."""

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from conftest import small_assistant, write
from paperchat import Assistant
from paperchat.filters import Filter
from paperchat.index.bm25 import BM25Index, BM25Params, Postings
from paperchat.index.loaders import load_bundled
from paperchat.index.passages import Passages
from paperchat.index.snapshot import MANIFEST, MAX_SEGMENTS, Segment, Snapshot, merge_tier, segments_to_merge
from paperchat.index.stored import RESIDENT_ROWS
from paperchat.index.strings import Keys
from paperchat.index.tokenize import Tokenizer

PAPERS = load_bundled()[0]
TEXTS = [p.title + "\n" + p.abstract for p in PAPERS]
QUERIES = ["pruning large language models", "diffusion sampling in fewer steps steps", "lora", "unseen-word model"]
TOKENIZER = Tokenizer()


@pytest.mark.parametrize("engine", ["bm25s", "rank-bm25"])
def test_bm25_over_segments_with_deletions_equals_one_index_built_from_scratch(engine):
    documents = TOKENIZER.batch(TEXTS)
    deleted = [3, 50, 200, 301]
    live = np.ones(len(TEXTS), dtype=bool)
    live[deleted] = False
    first, second = np.ones(300, dtype=bool), np.ones(len(TEXTS) - 300, dtype=bool)
    first[[3, 50, 200]] = second[1] = False
    segments = BM25Index(
        [Postings.build(documents[:300]), Postings.build(documents[300:])],
        engine,
        TOKENIZER,
        BM25Params(),
        [first, second],
    )
    scratch = BM25Index.build([t for t, keep in zip(TEXTS, live) if keep], engine, TOKENIZER)
    for query in QUERIES:
        terms = TOKENIZER.tokens(query)
        both = segments.scores(terms)
        assert both[~live].tolist() == [0.0] * len(deleted)
        assert both[live] == pytest.approx(scratch.scores(terms), abs=1e-6)
        for term in terms:
            alone = segments.weighted_term_scores({term: 1.0}, np.arange(len(TEXTS)))
            assert alone == pytest.approx(segments.scores([term]), abs=1e-6)
        every = segments.weighted_term_scores(dict.fromkeys(terms, 0.5), np.arange(len(TEXTS)))
        assert every == pytest.approx(0.5 * segments.scores(list(dict.fromkeys(terms))), abs=1e-6)
    assert segments.idf(["model", "lora", "unseen"]) == pytest.approx(scratch.idf(["model", "lora", "unseen"]))


def test_each_documents_terms_are_read_back_from_its_segment_as_tokenised(tmp_path):
    documents = TOKENIZER.batch(TEXTS)
    Postings.build(documents[:300]).save(tmp_path)
    index = BM25Index([Postings.load(tmp_path), Postings.build(documents[300:])], "bm25s", TOKENIZER, BM25Params())
    for row in (0, 150, 299, 300, len(TEXTS) - 1):
        document = index.document(row)
        counted = Counter(documents[row])
        assert dict(zip(document.terms.tolist(), document.counts.tolist())) == counted
        assert document.length == len(documents[row])
        assert document.idf.tolist() == [index.idf([t])[t] for t in document.terms.tolist()]


def test_a_vocabulary_too_large_to_keep_as_a_dict_is_searched_in_its_mapped_table(tmp_path):
    documents = TOKENIZER.batch(TEXTS)
    many = [documents[i % len(documents)] + [f"row{i}"] for i in range(RESIDENT_ROWS + 1)]  # a term of its own each
    Postings.build(many).save(tmp_path)
    large = Postings.load(tmp_path)
    assert len(large.terms) > RESIDENT_ROWS and not large.terms.resident
    asked = Keys(["model", "lora", "zzz-not-a-term", "row17", "row20000", "", "diffus", "the"])
    column_of = {term: column for column, term in enumerate(large.terms)}
    assert large.columns_of(asked).tolist() == [column_of.get(t, -1) for t in asked.strings]
    index = BM25Index([large], "bm25s", TOKENIZER, BM25Params())
    for row in (0, 7, len(many) - 1):
        document = index.document(row)
        assert dict(zip(document.terms.tolist(), document.counts.tolist())) == Counter(many[row])
    for query in QUERIES + ["row17 model"]:
        terms = TOKENIZER.tokens(query)
        expected = np.zeros(len(many), dtype=np.float32)
        for term in terms:
            holders = [row for row, document in enumerate(many) if term in document]
            if holders:
                assert index.document_frequency(term) == len(holders)
                expected[holders] += index.scores([term])[holders]
        assert index.scores(terms) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("engine", ["bm25s", "rank-bm25"])
def test_bm25_scores_equal_those_of_the_library_the_engine_is_named_after(engine):
    documents = TOKENIZER.batch(TEXTS)
    if engine == "bm25s":
        import bm25s

        library = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        library.index(documents, show_progress=False)
        expected = lambda terms: library.get_scores(terms)  # noqa: E731
    else:
        from rank_bm25 import BM25Okapi

        expected = BM25Okapi(documents, k1=1.2, b=0.75).get_scores
    ours = BM25Index.build(TEXTS, engine, TOKENIZER)
    for query in QUERIES[:3]:
        terms = TOKENIZER.tokens(query)
        assert ours.scores(terms) == pytest.approx(np.asarray(expected(terms)), abs=1e-5)


def snapshot_of(rows, vectors, engine="bm25s"):
    ids = [PAPERS[i].id for i in rows]
    metadatas = [{"title": PAPERS[i].title, "date": f"2024-0{1 + i % 9}-01"} for i in rows]
    passages = Passages.group(ids, [ids[0], ids[0]], [0, 1], vectors[:2], vectors.shape[1])
    return Segment.build(ids, [TEXTS[i] for i in rows], vectors[rows], metadatas, passages, TOKENIZER), Snapshot.build(
        ids, [TEXTS[i] for i in rows], vectors[rows], metadatas, passages, engine, TOKENIZER
    )


def test_a_snapshot_with_a_delta_and_deletions_searches_like_one_built_from_scratch(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(len(PAPERS), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    base = snapshot_of(range(300), vectors)[1]
    delta = snapshot_of(range(300, len(PAPERS)), vectors)[0]
    replaced = [PAPERS[i].id for i in (4, 10, 350)]  # 350 is in the delta: its old row goes, its new one stays
    grown = base.with_changes(delta, replaced)
    grown = grown.with_changes(None, [PAPERS[20].id])  # a removal
    kept = [i for i in range(len(PAPERS)) if i not in (4, 10, 20)]
    scratch = snapshot_of(kept, vectors)[1]
    assert grown.documents == scratch.documents == len(kept) and len(grown.segments) == 2
    assert grown.positions([PAPERS[20].id, PAPERS[350].id]).tolist() == [-1, len(grown) - len(delta) + 50]
    rows = grown.positions([PAPERS[i].id for i in kept])
    for query in QUERIES:
        terms = TOKENIZER.tokens(query)
        assert grown.bm25.scores(terms)[rows] == pytest.approx(scratch.bm25.scores(terms), abs=1e-6)
    top, similarities = grown.nearest(vectors[7], 10)
    expected, expected_similarities = scratch.nearest(vectors[7], 10)
    assert [grown.ids[i] for i in top] == [scratch.ids[i] for i in expected]
    assert similarities == pytest.approx(expected_similarities)
    since = Filter(since="2024-03")
    assert sorted(grown.ids[i] for i in np.flatnonzero(since.mask(grown.columns))) == sorted(
        scratch.ids[i] for i in np.flatnonzero(since.mask(scratch.columns))
    )
    grown.save(tmp_path, "fp")
    loaded, why = Snapshot.load(tmp_path, "fp", "bm25s", TOKENIZER, BM25Params(), previous=base)
    assert why == "loaded" and loaded.segments[0] is base.segments[0]  # the segment it held is not read again
    merged = loaded.merged()
    assert len(merged.segments) == 1 and list(merged.ids) == [grown.ids[i] for i in grown.live_rows()]
    assert merged.bm25.scores(terms) == pytest.approx(scratch.bm25.scores(terms), abs=1e-6)
    first_only = loaded.merged([0])  # the base folded alone: its live rows after the delta
    assert first_only.segments[0] is loaded.segments[1] and first_only.live_sizes() == [len(delta), 297]
    rows = first_only.positions([PAPERS[i].id for i in kept])
    assert first_only.bm25.scores(terms)[rows] == pytest.approx(scratch.bm25.scores(terms), abs=1e-6)


def test_vector_copies_are_float16_files_mapped_when_large_and_rank_as_their_writer_did(tmp_path, monkeypatch):
    import paperchat.index.snapshot as snapshot_module

    vectors = np.random.default_rng(1).normal(size=(len(PAPERS), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    written = snapshot_of(range(len(PAPERS)), vectors)[1]
    written.save(tmp_path, "fp")
    folder = tmp_path / written.segments[0].name
    assert {np.load(folder / name).dtype for name in ("vectors.npy", "passage-vectors.npy")} == {np.dtype(np.float16)}
    small, _ = Snapshot.load(tmp_path, "fp", "bm25s", TOKENIZER, BM25Params())
    monkeypatch.setattr(snapshot_module, "RESIDENT_ROWS", 100)  # as if these 380 papers were a large segment
    large, _ = Snapshot.load(tmp_path, "fp", "bm25s", TOKENIZER, BM25Params())
    assert small.vectors.dtype == np.float32 and not isinstance(small.vectors, np.memmap)
    assert isinstance(large.vectors.base, np.memmap) and large.vectors.dtype == np.float16  # a view of the file
    assert np.array_equal(small.vectors, written.vectors)  # the writer held the float16-rounded values too
    for query in vectors[[0, 7, 99]]:
        top, similarities = written.nearest(query, 10)
        for loaded in (small, large):
            found, found_similarities = loaded.nearest(query, 10)
            assert found.tolist() == top.tolist() and found_similarities == pytest.approx(similarities, abs=1e-6)
    assert np.abs(written.vectors - vectors).max() < 1e-3  # float16 of unit vectors: about 3 significant digits


@pytest.fixture
def grown(tmp_path, embedder):
    """An index of 40 bundled papers, then 8 more ingested, 2 updated and 3 removed."""

    def jsonl(name, papers):
        lines = [json.dumps({"id": p.id, "title": p.title, "abstract": p.abstract, "date": p.date}) for p in papers]
        return write(tmp_path / name, "\n".join(lines) + "\n")

    assistant = small_assistant(tmp_path / "index", embedder, jsonl("base.jsonl", PAPERS[:40]))
    changed = [PAPERS[40 + i] for i in range(8)] + [
        replace(PAPERS[i], abstract=PAPERS[i].abstract + " Revised.") for i in (3, 9)
    ]
    return assistant, jsonl("more.jsonl", changed), tmp_path


def search_figures(assistant):
    """Ids and scores of the top 10 of each query in each mode."""
    found = {}
    for query in QUERIES:
        for mode in ("bm25", "hybrid"):
            hits = assistant.search(query, k=10, mode=mode)
            found[query, mode] = ([h.id for h in hits], [h.score for h in hits])
    return found


def assert_same_results(found, expected):
    assert found.keys() == expected.keys()
    for key, (ids, scores) in expected.items():
        assert found[key][0] == ids and found[key][1] == pytest.approx(scores, abs=1e-5), key


def test_an_ingest_adds_one_segment_and_scores_equal_a_full_rebuild(grown, embedder):
    assistant, more, tmp_path = grown
    replica = Assistant.open(tmp_path / "index", bootstrap=False, load_model=False, notify=lambda m: None)
    replica.store.embedder = embedder
    held = replica.store.snapshot().segments
    assistant.ingest([more], progress=False)
    assistant.remove([PAPERS[i].id for i in (0, 41, 5)])
    folder = assistant.store.snapshot_folder
    manifest = json.loads((folder / MANIFEST).read_text())
    assert [s["documents"] for s in manifest["segments"]] == [40, 10] and manifest["documents"] == 45
    assert manifest["segments"][0]["name"] == held[0].name  # the base was not rewritten
    messages = []
    replica.store.notify = messages.append
    assert replica.store.snapshot() is not None and replica.store.refresh().segments[0] is held[0]
    assert messages == [] and replica.store.snapshot().documents == 45  # loaded the new segment, rebuilt nothing
    incremental = search_figures(assistant)
    assert_same_results(search_figures(replica), incremental)
    (folder / MANIFEST).unlink()
    rebuilt = Assistant.open(tmp_path / "index", bootstrap=False, load_model=False, notify=lambda m: None)
    rebuilt.store.embedder = embedder
    assert len(rebuilt.store.snapshot().segments) == 1
    assert_same_results(search_figures(rebuilt), incremental)


def test_a_replica_that_finds_writes_no_segment_accounts_for_rebuilds_in_full_and_says_so(grown, embedder):
    assistant, _, tmp_path = grown
    store = assistant.store
    replica = Assistant.open(tmp_path / "index", bootstrap=False, load_model=False, notify=lambda m: None)
    replica.store.embedder = embedder
    paper = PAPERS[100]
    with store._writer.held():  # a writer that dies after writing to Chroma, before writing its segment
        store.repository.stamp()
        store._write_batch([paper], store.passages([paper]), lambda n: None)
        store.repository.stamp()
    messages = []
    replica.store.notify = messages.append
    snapshot = replica.store.refresh()
    assert any("does not account for the latest writes to Chroma" in m and "in full" in m for m in messages)
    assert snapshot.documents == 41 and snapshot.positions([paper.id])[0] >= 0


def test_past_max_segments_the_writer_merges_the_smallest_and_leaves_full_ones_alone(grown):
    assistant, _, tmp_path = grown
    assistant.store.segment_rows = 40  # the 40-paper base counts as full: a bulk ingest's segment
    base = assistant.store.snapshot().segments[0]
    for i in range(MAX_SEGMENTS + 1):
        paper = PAPERS[200 + i]
        line = json.dumps({"id": paper.id, "title": paper.title, "abstract": paper.abstract})
        assistant.ingest([write(tmp_path / f"one-{i}.jsonl", line + "\n")], progress=False)
    sizes = assistant.store.snapshot().live_sizes()
    assert sizes == [40, 1, 1, 1, 6] and assistant.store.snapshot().segments[0] is base  # 9 small: 6 merged
    assert len(list(assistant.store.snapshot_folder.glob("segment-*"))) == 5
    assert assistant.search(PAPERS[200].title, k=1, mode="bm25")[0].id == PAPERS[200].id
    assert assistant.store.snapshot().documents == 40 + MAX_SEGMENTS + 1


def test_the_merge_policy_folds_the_smallest_segments_of_one_size_tier_and_never_a_full_one():
    full = 100_000
    assert segments_to_merge([full] * 10 + [50] * MAX_SEGMENTS, full) == []
    assert segments_to_merge([full, 400, 50, 7, 50, 50, 50, 50, 50, 50], full) == [2, 3, 4, 5, 6, 7]
    assert segments_to_merge([99_999] * 9, full) == [0, 1, 2, 3, 4, 5]  # equal sizes: the oldest first
    assert segments_to_merge([5] * 9, full, most=2) == list(range(9))  # at most 2 small: all 9 become one
    # A 1M bulk ingest in pages of 125k leaves 8 remnants of 25k: a daily page of 50 merges none of them ...
    assert segments_to_merge([full] * 8 + [25_000] * 8 + [50], full) == []
    # ... and when the small tier overflows, only pages are folded, never a remnant (the write stays small).
    assert segments_to_merge([full] + [25_000] * 8 + [50] * 9, full) == [9, 10, 11, 12, 13, 14]
    assert [merge_tier(size) for size in (0, 999, 1_000, 9_999, 10_000, 99_999)] == [0, 0, 1, 1, 2, 2]


def test_a_big_ingest_and_a_rebuild_hold_one_segment_of_papers_at_a_time_and_score_as_one(tmp_path, embedder):
    """Papers past `segment_rows` go into several segments (written, stamped and logged one at a time), and a rebuild
    from Chroma reads them that way too; scores equal those of one segment holding them all."""
    lines = [json.dumps({"id": p.id, "title": p.title, "abstract": p.abstract, "date": p.date}) for p in PAPERS[:40]]
    corpus = write(tmp_path / "forty.jsonl", "\n".join(lines) + "\n")
    chunked = small_assistant(tmp_path / "chunked", embedder, corpus, segment_rows=16)
    whole = small_assistant(tmp_path / "whole", embedder, corpus)
    assert chunked.store.snapshot().live_sizes() == [16, 16, 8] and whole.store.snapshot().live_sizes() == [40]
    expected = search_figures(whole)
    assert_same_results(search_figures(chunked), expected)
    assert len(chunked.store.snapshot().lexicon) == len(whole.store.snapshot().lexicon)
    (chunked.store.snapshot_folder / MANIFEST).unlink()
    rebuilt = Assistant.open(
        tmp_path / "chunked", bootstrap=False, load_model=False, notify=lambda m: None, segment_rows=16
    )
    rebuilt.store.embedder = embedder
    assert rebuilt.store.snapshot().live_sizes() == [16, 16, 8]
    assert_same_results(search_figures(rebuilt), expected)
    assert sorted(rebuilt.store.snapshot().lexicon.words) == sorted(whole.store.snapshot().lexicon.words)


def test_an_ingest_plans_from_the_papers_it_can_meet_not_from_every_stored_one(assistant):
    """The plan reads the stored papers sharing an id, title id, arXiv id, DOI or title with the incoming ones, and
    decides exactly what it would from all of them."""
    from paperchat.index.papers import title_id
    from paperchat.index.plan import plan_ingest

    repository = assistant.store.repository
    incoming = [
        PAPERS[0],  # the same paper again
        replace(PAPERS[1], id=title_id(PAPERS[1].title.upper() + "!"), title=PAPERS[1].title.upper() + "!"),
        replace(PAPERS[2], abstract=PAPERS[2].abstract + " Revised."),  # changed text
        replace(PAPERS[3], id="new-paper", title="A paper nobody wrote", abstract="Nothing."),
    ]
    some = repository.existing_metadata(incoming)
    assert set(some) == {PAPERS[0].id, PAPERS[1].id, PAPERS[2].id}
    targeted, everything = plan_ingest(some, incoming), plan_ingest(repository.existing_metadata(), incoming)
    assert (targeted.added, targeted.updated, targeted.unchanged) == (1, 2, 1)  # a new title is new text
    assert [p.id for p in targeted.embed] == [p.id for p in everything.embed]
    assert targeted.metadata == everything.metadata
