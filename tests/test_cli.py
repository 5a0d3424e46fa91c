"""The `paperchat` command: output formats and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from conftest import write
from paperchat.cli import main


def run(capsys, *argv):
    code = main([*argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_search_json_schema(bundled_index, capsys):
    code, out, _ = run(capsys, "search", "Lastde++", "-k", "2", "--json", "--index", str(bundled_index), "-q")
    payload = json.loads(out)
    assert code == 0 and set(payload) >= {"query", "mode", "took_ms", "hits"}
    hit = payload["hits"][0]
    assert set(hit) >= {
        "rank",
        "id",
        "title",
        "snippet",
        "score",
        "bm25",
        "vector",
        "bm25_rank",
        "vector_rank",
        "citation",
        "metadata",
    }
    assert hit["id"] == "training-free-llm-generated-text-detection-by-mining-token-probability-sequences"


def test_search_text_output_shows_why(bundled_index, capsys):
    code, out, _ = run(
        capsys, "search", "parameter-free differentiable pruning", "-k", "1", "--index", str(bundled_index), "-q"
    )
    assert code == 0 and "PDP: Parameter-free Differentiable Pruning" in out and "why: bm25: #" in out


def test_batch_search_jsonl_and_trec(bundled_index, tmp_path, capsys):
    queries = write(
        tmp_path / "q.jsonl",
        "\n".join(
            [
                json.dumps({"_id": "a", "text": "Lastde++"}),
                json.dumps({"id": "b", "question": "light schrodinger bridge"}),
                json.dumps(
                    {"_id": "c", "text": "what about for vision models?", "history": ["pruning large language models"]}
                ),
            ]
        ),
    )
    code, out, _ = run(
        capsys, "search", "--queries", str(queries), "-k", "3", "--format", "jsonl", "--index", str(bundled_index), "-q"
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [line["query_id"] for line in lines] == ["a", "b", "c"]
    assert lines[1]["hits"][0]["id"] == "light-schrodinger-bridge"
    assert [f["text"] for f in lines[2]["searched"]] == [
        "what about for vision models?",
        "pruning large language models",
        "pruning vision models",
    ]
    code, out, _ = run(
        capsys, "search", "--queries", str(queries), "-k", "3", "--format", "trec", "--index", str(bundled_index), "-q"
    )
    rows = [line.split() for line in out.splitlines()]
    assert (
        code == 0
        and len(rows) == 9
        and rows[3][:4] == ["b", "Q0", "light-schrodinger-bridge", "1"]
        and rows[0][5] == "paperchat"
    )


def test_info_json(bundled_index, capsys):
    code, out, _ = run(capsys, "info", "--json", "--index", str(bundled_index))
    info = json.loads(out)
    assert code == 0 and info["documents"] == 380 and info["index"] == str(bundled_index) and info["engine"] == "bm25s"
    assert info["model"] == "all-MiniLM-L6-v2" and info["llm"].startswith("none")


def test_info_shows_the_llm_endpoint_and_never_the_key(bundled_index, capsys, monkeypatch):
    monkeypatch.setenv("PAPERCHAT_LLM_API_KEY", "sk-never-shown")
    code, out, err = run(
        capsys,
        "info",
        "--index",
        str(bundled_index),
        "--llm-url",
        "http://127.0.0.1:11434/v1",
        "--llm-model",
        "llama3.2",
    )
    assert code == 0 and "llm: llama3.2 at http://127.0.0.1:11434/v1" in out and "sk-never-shown" not in out + err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", ""], "the query is empty"),
        (["search", "lora", "-k", "0"], "k must be a whole number from 1 to 1000"),
        (["search", "lora", "-k", "5000"], "k must be a whole number from 1 to 1000"),
        (["search"], "give either a QUERY or --queries FILE"),
        (["search", "--queries", "/nonexistent/q.jsonl"], "no such file"),
        (["ingest", "/nonexistent/papers.jsonl"], "no such file or folder"),
    ],
)
def test_user_mistakes_are_one_line_errors_with_status_2(bundled_index, capsys, argv, message):
    code, out, err = run(capsys, *argv, "--index", str(bundled_index), "-q")
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_mode_is_rejected_by_the_parser_listing_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "lora", "--mode", "fuzzy"])
    assert exit_info.value.code == 2 and "choose from 'hybrid', 'bm25', 'vector'" in capsys.readouterr().err


def test_console_script_exit_status_without_traceback(bundled_index):
    result = subprocess.run(
        [sys.executable, "-m", "paperchat.cli", "search", "  ", "--index", str(bundled_index)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        result.returncode == 2
        and "paperchat: error: the query is empty" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_ingest_reports_skipped_lines_and_counts(tmp_path, capsys, bundled_index):
    corpus = write(
        tmp_path / "mine.jsonl",
        json.dumps({"id": "x1", "title": "A new paper", "abstract": "About graph rewiring."}) + "\n{oops\n",
    )
    code, out, err = run(capsys, "ingest", str(corpus), "--index", str(tmp_path / "idx"), "-q")
    assert code == 0 and "1 added" in out and "read 1 entries -> 1 unique papers; skipped 1 problem(s)" in out


def test_output_cut_off_by_the_reader_ends_quietly(bundled_index):
    """`paperchat search ... | head -1`: no traceback when the pipe closes early."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paperchat.cli",
            "search",
            "model",
            "-k",
            "300",
            "--no-gate",
            "--index",
            str(bundled_index),
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().startswith(b"300 results")
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and "Traceback" not in err, err


@pytest.mark.parametrize("option", [["--chroma-url", "http://127.0.0.1:8000"], ["--recall-only"], ["--common-stack"]])
def test_bench_refuses_a_search_only_option_without_search_only(capsys, tmp_path, option):
    code, _, err = run(capsys, "bench", *option, "--out", str(tmp_path))
    assert code == 2 and f"{option[0]} only goes with --search-only INDEX" in err
