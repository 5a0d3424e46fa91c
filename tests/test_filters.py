"""Filters on both sides before fusion: pure masks, and a property test on a real index."""

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import small_assistant, write
from paperchat import PaperchatError
from paperchat.filters import Filter, date_mask
from paperchat.index.columns import Columns, date_bounds

METADATA = [
    {
        "date": "2024-06-06",
        "authors": json.dumps(["Élodie Dupré", "Ada Lovelace"]),
        "categories": json.dumps(["cs.CL", "cs.LG"]),
        "venue": "NeurIPS",
        "pages": json.dumps(["HF Daily Papers, Jun 6"]),
        "code_links": json.dumps(["https://github.com/a/b"]),
    },
    {
        "date": "2023",
        "authors": json.dumps(["Alan Turing"]),
        "categories": json.dumps(["cs.CV"]),
        "venue": "CVPR",
        "pages": json.dumps(["mine.bib"]),
        "code_links": "[]",
    },
    {
        "date": "",
        "authors": "[]",
        "categories": "[]",
        "venue": "",
        "pages": json.dumps(["HF Daily Papers, May 8"]),
        "code_links": "[]",
    },
]


@pytest.mark.parametrize(
    "where, rows",
    [
        ({"author": "elodie DUPRE"}, [0]),
        ({"author": "turing"}, [1]),
        ({"category": "CS.cl"}, [0]),
        ({"category": "cs"}, []),
        ({"venue": "neur"}, [0]),
        ({"source": "jun 6"}, [0]),
        ({"has_code": True}, [0]),
        ({"has_code": False}, [1, 2]),
        ({"since": "2024"}, [0]),
        ({"until": "2023-12"}, [1]),
        ({"since": "2023-06", "until": "2024-06"}, [0, 1]),
        ({"since": "2024", "author": "Turing"}, []),
    ],
)
def test_filter_masks(where, rows):
    assert np.flatnonzero(Filter.of(where).mask(Columns.from_metadatas(METADATA))).tolist() == rows


def test_text_columns_match_within_one_row_and_cost_their_text_not_the_longest_value(tmp_path):
    crowd = json.dumps([f"Author Number{i}" for i in range(3000)])  # a physics paper's author list
    metadatas = [*METADATA, {"authors": crowd}] + [{"authors": json.dumps(["Ada Byron"])}] * 996
    columns = Columns.from_metadatas(metadatas)
    assert np.flatnonzero(Filter(author="number2999").mask(columns)).tolist() == [3]
    assert not Filter(author="lovelace||alan").mask(columns).any()  # the end of row 0 and the start of row 1
    assert np.flatnonzero(Filter(author="byron").mask(columns)).tolist() == list(range(4, 1000))
    columns.save(tmp_path)
    on_disk = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert on_disk < 200_000  # fixed-width strings would give all 1000 rows the crowd's width: over 200 MB
    loaded = Columns.load(tmp_path)
    joined = Columns.joined([loaded, Columns.from_metadatas(METADATA)], np.ones(1003, dtype=bool))
    assert np.flatnonzero(Filter(author="turing").mask(joined)).tolist() == [1, 1001]
    assert np.flatnonzero(Filter(category="cs.cl").mask(joined)).tolist() == [0, 1000]


def test_date_mask_compares_each_date_at_its_own_precision():
    columns = Columns.from_metadatas([{"date": d} for d in ("2024", "2024-06", "2024-06-06", "2023-12-31", "", "2025")])
    assert date_mask(columns.date_from, columns.date_to, "2024-03-01", None).tolist() == [
        True,
        True,
        True,
        False,
        False,
        True,
    ]
    assert date_mask(columns.date_from, columns.date_to, None, "2024-06").tolist() == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]
    assert (
        date_bounds("2024") == (20240101, 20241231)
        and date_bounds("2024-06-06") == (20240606, 20240606)
        and date_bounds("") == (0, 0)
    )


@pytest.mark.parametrize(
    "where, message",
    [
        ({"since": "June 2024"}, "not an ISO date"),
        ({"since": "2024-13"}, "not an ISO date"),
        ({"authors": "x"}, "unknown filter field"),
        ({"author": " "}, "author is empty"),
        ({"since": "2025", "until": "2024"}, "is after"),
    ],
)
def test_bad_filters_are_clear_errors(where, message):
    with pytest.raises(PaperchatError, match=message):
        Filter.of(where)


def test_an_empty_filter_is_no_filter():
    assert Filter.of({}) is None and Filter.of({"author": None}) is None and Filter.of(Filter()) is None


TOPICS = [
    "graph neural networks",
    "protein folding",
    "speech recognition",
    "image segmentation",
    "reinforcement learning",
]
AUTHORS = ["Élodie Dupré", "Ada Lovelace", "Alan Turing", "Grace Hopper", "Emmy Noether"]
CATEGORIES = ["cs.CL", "cs.LG", "cs.CV", "q-bio.BM"]


@pytest.fixture(scope="module")
def filtered_index(tmp_path_factory, embedder):
    rng = random.Random(7)
    folder = tmp_path_factory.mktemp("filtered")
    rows = []
    for i in range(60):
        topic = TOPICS[i % len(TOPICS)]
        rows.append(
            json.dumps(
                {
                    "id": f"p{i:02d}",
                    "title": f"{topic.title()} study {i}",
                    "abstract": f"We study {topic} with method M{i} and baseline B{i % 4}.",
                    "authors": rng.sample(AUTHORS, rng.randint(0, 2)),
                    "categories": rng.sample(CATEGORIES, rng.randint(0, 2)),
                    "date": rng.choice(["", "2022", "2023-05", "2024-01-15", "2024-06-06", "2025-02"]),
                    "venue": rng.choice(["", "NeurIPS", "ICML", "Nature"]),
                    "url": f"https://example.org/{i}" if i % 3 else "",
                    "abstract_note": "",
                }
                | (
                    {"abstract": f"We study {topic} with method M{i}. Code: https://github.com/lab/m{i}"}
                    if i % 4 == 0
                    else {}
                )
            )
        )
    assistant = small_assistant(folder / "index", embedder, write(folder / "papers.jsonl", "\n".join(rows) + "\n"))
    return assistant


filters = st.fixed_dictionaries(
    {},
    optional={
        "since": st.sampled_from(["2022", "2023-06", "2024", "2024-06-06"]),
        "until": st.sampled_from(["2023", "2024-03", "2025"]),
        "author": st.sampled_from(["dupre", "LOVELACE", "Turing", "noether", "hop"]),
        "category": st.sampled_from(CATEGORIES + ["cs"]),
        "venue": st.sampled_from(["neur", "icml", "Nature"]),
        "source": st.sampled_from(["papers.jsonl", "other.bib"]),
        "has_code": st.booleans(),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=filters,
    query=st.sampled_from(TOPICS + ["method M12", "baseline", "study 7 protein"]),
    mode=st.sampled_from(["hybrid", "bm25", "vector"]),
)
def test_every_hit_matches_the_filter_and_bm25_is_the_unfiltered_ranking_restricted(filtered_index, where, query, mode):
    try:
        wanted = Filter.of(where)
    except PaperchatError:
        return  # since after until: refused, tested above
    snapshot = filtered_index.store.snapshot()
    matching = set() if wanted is None else {snapshot.ids[i] for i in np.flatnonzero(wanted.mask(snapshot.columns))}
    hits = filtered_index.search(query, 10, mode, where=where)
    if wanted is None:
        return
    assert {h.id for h in hits} <= matching
    if mode == "bm25":
        unfiltered = [h.id for h in filtered_index.search(query, 1000, "bm25")]
        assert [h.id for h in hits] == [doc for doc in unfiltered if doc in matching][:10]
    else:
        assert len(hits) == min(10, len(matching))  # k hits whenever k papers match
    for hit in hits:  # ranks are within the filtered set
        assert hit.vector_rank is None or hit.vector_rank <= len(matching)


def test_a_chat_filter_holds_for_the_following_turns(assistant):
    history = ["pruning large language models"]
    filtered = assistant.ask("only the ones with code", history, k=5)
    assert (
        filtered.where == Filter(has_code=True)
        and filtered.hits
        and all(h.metadata["code_links"] for h in filtered.hits)
    )
    assert any(
        "prun" in h.title.lower() for h in filtered.hits
    )  # the previous question, searched again with the filter
    later = assistant.ask("what about for vision models?", [*history, "only the ones with code"], k=5)
    assert later.where == Filter(has_code=True) and all(h.metadata["code_links"] for h in later.hits)
    cleared = assistant.ask(
        "what about for vision models?", [*history, "only the ones with code", "clear the filters"], k=5
    )
    assert cleared.where is None and cleared.to_dict()["filter"] is None
