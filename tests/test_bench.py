"""`paperchat bench` end to end on a tiny corpus: every figure of the table is measured and printed."""

import json
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_reports_the_serving_process_the_rebuild_and_a_capped_common_stack(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "paperchat.cli", "bench", "--sizes", "40,80"]
        + ["--queries", "12", "--common-stack-max-size", "60", "--common-stack-seconds", "0.001", "--hnsw-ef", "10,200"]
        + ["--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    small, large = json.loads((tmp_path / "out" / "bench.json").read_text())["sizes"]
    assert small["common_stack"]["queries_timed"] == 1  # capped by time: one query timed, and said so
    assert (tmp_path / "work" / "common-stack-40" / "search-only.json").exists()  # in a fresh process of its own
    assert large["common_stack"] is None  # above --common-stack-max-size: not built
    for size in (small, large):
        serving = size["serving_process"]
        assert serving["documents"] == size["documents"] + 50 and serving["rss_mb"] > 0
        assert serving["new_query"]["p50_ms"] >= serving["query_embedding"]["p50_ms"] > 0
        assert size["open_with_rebuild_seconds"] > 0 and size["cli_search_seconds"] > 0
        page = size["page_of_50"]  # a page added to the index: one more segment, found by a replica
        assert page["replica_found"] == 50 and page["segments"] == 2
        assert page["ingest_seconds"] > page["embedding_seconds"]
        assert [h["ef_search"] for h in size["hnsw_sweep"]] == [10, 200]  # each in a fresh process, then restored
        assert serving["hnsw"]["ef_search"] == 600 and 0 < serving["hnsw"]["recall_at_100"] <= 1
        assert (serving["hnsw"]["max_neighbors"], serving["hnsw"]["ef_construction"]) == (64, 200)
        assert size["hnsw_sweep"][1]["recall_at_100"] == 1.0  # ef 200 > the documents: HNSW visits all of them
        assert 0 < serving["anonymous_mb"] < serving["rss_mb"]
        replica = size["server_replica"]  # a fresh process on a `chroma run` server over the same Chroma folder
        assert replica["index"].startswith("http://127.0.0.1:") and replica["documents"] == size["documents"] + 50
        assert replica["open_seconds"] > 0 and 0 < replica["anonymous_mb"] < replica["rss_mb"]
        assert replica["new_query"]["p50_ms"] >= replica["query_embedding"]["p50_ms"] > 0
        assert replica["page_of_50"]["replica_found"] == 50 and replica["server_rss_mb"] > 0
    table = run.stdout
    assert "(1 queries: --common-stack-seconds)" in table and "not run (above --common-stack-max-size)" in table
    speedup = next(line for line in table.splitlines() if line.startswith("speed-up (p50)"))
    assert re.search(r"\d+\.\dx \(\d+\.\dx\) \| +- *$", speedup), speedup  # fresh processes (the bench's); none
    assert "a replica on the folder finds it after" in table and "its query embedding p50 (the floor)" in table
    assert "replica on a `chroma run` server" in table and "the server's RSS MB" in table
    assert "open with a snapshot rebuilt from Chroma" in table and "10: " in table and "200: 1.0 (" in table


@pytest.mark.slow
def test_the_hnsw_study_measures_recall_against_the_exact_top_100(tmp_path):
    """Prepared vectors, a graph built with chosen links, and recall at two ef_search values, each in its own
    process: an ef_search above the collection's size visits every vector, so the graph finds the exact top 100."""

    def step(*args: str) -> str:
        command = [sys.executable, "-m", "paperchat.eval.hnsw_study", *args, "--size", "300", "--dir", str(tmp_path)]
        run = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
        return run.stdout

    step("prepare")
    assert json.loads(step("build", "--links", "24", "--construction", "50"))["build_s"] > 0
    graph = ("--links", "24", "--construction", "50")
    narrow, wide = (json.loads(step("recall", *graph, "--ef", ef)) for ef in ("10", "400"))
    assert (narrow["ef_search"], wide["ef_search"]) == (10, 400)
    assert wide["recall_at_100"] == 1.0 and 0 < narrow["recall_at_100"] <= 1.0
    assert wide["hnsw_query"]["p50_ms"] > 0 and wide["query_embedding"]["p50_ms"] > 0
    assert wide["hnsw_per_embedding"] == round(wide["hnsw_query"]["p50_ms"] / wide["query_embedding"]["p50_ms"], 2)
