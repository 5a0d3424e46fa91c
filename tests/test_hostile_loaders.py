"""Property-based tests: loaders never crash on garbage and never lose a good entry."""

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from paperchat.index.loaders import load_paths

GOOD = {"id": "good-1", "title": "A good paper", "abstract": "A perfectly fine abstract."}
fuzz = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@fuzz
@given(garbage=st.binary(max_size=4000), suffix=st.sampled_from([".txt", ".jsonl", ".csv", ".tsv"]))
def test_random_bytes_never_crash_any_loader(tmp_path, garbage, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(garbage)
    papers, report = load_paths([path])
    assert report.papers == len(papers)
    assert all(p.abstract.strip() for p in papers)


@fuzz
@given(
    noise=st.lists(
        st.one_of(st.binary(max_size=300), st.text(max_size=300), st.just(""), st.just("x" * 200_000)), max_size=12
    )
)
@example(noise=["[", b""])  # found by CI: a first line "[" made the file read as one JSON array
@example(noise=["@0", ""])  # found by a run: "@0" then a "{" line read as a BibTeX entry
def test_jsonl_keeps_the_good_entry_among_garbage_lines(tmp_path, noise):
    lines = [
        n.replace(b"\n", b" ") if isinstance(n, bytes) else n.replace("\n", " ").encode("utf-8", "replace")
        for n in noise
    ]
    lines.insert(len(lines) // 2, json.dumps(GOOD).encode())
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines))
    papers, _ = load_paths([path])
    assert "good-1" in [p.id for p in papers]


@fuzz
@given(noise=st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=200), max_size=10))
def test_csv_keeps_the_good_row_among_garbage_rows(tmp_path, noise):
    rows = ["id,title,abstract", "good-1,A good paper,A perfectly fine abstract."] + [
        n.replace("\n", " ").replace("\r", " ") for n in noise
    ]
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(rows), encoding="utf-8")
    papers, _ = load_paths([path])
    assert "good-1" in [p.id for p in papers]


@fuzz
@given(lines=st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=120), max_size=15))
def test_pages_with_odd_line_counts_keep_the_good_pair(tmp_path, lines):
    body = "\n\n".join(line.replace("\n", " ") for line in lines)
    page = "Daily Papers\n\nJun 6\n\nA Good Title\n\n" + "Good abstract. " * 40 + "\n\n" + body
    path = tmp_path / "page.txt"
    path.write_text(page, encoding="utf-8")
    papers, _ = load_paths([path])
    assert "A Good Title" in [p.title for p in papers]


def test_empty_files_are_reported_not_fatal(tmp_path):
    for suffix in (".txt", ".jsonl", ".csv"):
        (tmp_path / f"empty{suffix}").write_bytes(b"")
    papers, report = load_paths(sorted(tmp_path.iterdir()))
    assert papers == [] and [p.message for p in report.problems] == ["empty file"] * 3
