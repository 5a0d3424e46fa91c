"""User mistakes end in one line `paperchat: error: ...` and exit status 2, never a traceback,
and are reported before any model loads."""

import json
import socket
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write
from paperchat.cli import main


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code, err, message):
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("paperchat: error: ") and message in err, err


@pytest.fixture
def files(tmp_path):
    beir = tmp_path / "beir"
    write(beir / "corpus.jsonl", json.dumps({"_id": "d1", "title": "T", "text": "x"}) + "\n")
    write(beir / "queries.jsonl", json.dumps({"_id": "q1"}) + "\n")
    write(beir / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return {
        "queries": write(tmp_path / "q.jsonl", json.dumps({"_id": "a", "text": "lora"}) + "\n"),
        "qrels": write(tmp_path / "qrels.txt", "q1 0 d1 1\n"),
        "bad_run": write(tmp_path / "bad.trec", "q1 Q0 d1 1 high x\n"),
        "a_file": write(tmp_path / "plain-file", "not a folder"),
        "beir": beir,
        "tmp": tmp_path,
    }


@pytest.mark.parametrize(
    "case",
    [
        "output folder",
        "index under a file",
        "missing run",
        "run score",
        "beir query",
        "bench sizes",
        "share without auth",
        "info on a mistyped index",
        "remove on a mistyped index",
        "llm url",
        "collection name",
    ],
)
def test_mistakes_are_one_line_errors_with_status_2(capsys, files, case):
    tmp = files["tmp"]
    argv, message = {
        "output folder": (
            ["search", "--queries", files["queries"], "-o", tmp / "no" / "such" / "out.jsonl"],
            "cannot write",
        ),
        "index under a file": (["search", "lora", "--index", files["a_file"] / "index"], "cannot open the index"),
        "missing run": (
            ["eval", "--qrels", files["qrels"], "--run", tmp / "missing.trec"],
            "missing.trec: cannot read",
        ),
        "run score": (["eval", "--qrels", files["qrels"], "--run", files["bad_run"]], "score 'high' is not a number"),
        "beir query": (
            ["eval", "--sets", "none", "--beir", files["beir"], "--index-root", tmp / "roots"],
            "needs an '_id' and a 'text'",
        ),
        "bench sizes": (["bench", "--sizes", "1k"], "'1k' is not a comma-separated list of whole numbers"),
        "share without auth": (["chat", "--share", "--index", tmp / "idx"], "add --auth USER:PASSWORD"),
        "info on a mistyped index": (["info", "--index", tmp / "mistyped"], "there is no index at"),
        "remove on a mistyped index": (["remove", "x", "--index", tmp / "mistyped"], "there is no index at"),
        "llm url": (
            ["ask", "lora", "--llm-url", "localhost:11434", "--index", tmp / "mistyped"],
            "must be an http:// or https:// url",
        ),
        "collection name": (
            ["search", "lora", "--collection", "up", "--index", tmp / "mistyped"],
            "invalid setting collection = 'up': value error, must be 3 to 502 letters",
        ),
    }[case]
    code, _, err = run(capsys, *argv)
    one_line_error(code, err, message)
    assert not (tmp / "mistyped").exists()


def test_a_port_in_use_is_reported_before_the_app_starts(capsys, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, err = run(capsys, "chat", "--port", busy.getsockname()[1], "--index", tmp_path / "idx")
    one_line_error(code, err, "choose another with --port")
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize("argv", [["ingest", "/no/such/papers.jsonl"], ["search", "--queries", "/no/such/q.jsonl"]])
def test_a_missing_file_is_reported_before_any_model_loads(tmp_path, argv):
    script = (
        "import sys; from paperchat.cli import main; code = main(sys.argv[1:]); "
        "print(code, 'torch' in sys.modules or 'onnxruntime' in sys.modules or 'chromadb' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *argv, "--index", str(tmp_path / "idx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        result.stdout.split() == ["2", "False"] and "no such file" in result.stderr and "Traceback" not in result.stderr
    )
    assert not (tmp_path / "idx").exists()


def test_batch_history_as_a_string_is_one_earlier_message(bundled_index, tmp_path, capsys):
    queries = write(
        tmp_path / "q.jsonl",
        json.dumps({"_id": "c", "text": "what about for vision models?", "history": "pruning large language models"})
        + "\n"
        + json.dumps({"_id": "d", "text": "and then?", "history": 42})
        + "\n",
    )
    code, _, err = run(capsys, "search", "--queries", queries, "-q", "--index", bundled_index)
    one_line_error(code, err, "q.jsonl:2: 'history' must be a list of earlier messages")
    write(
        queries,
        json.dumps({"_id": "c", "text": "what about for vision models?", "history": "pruning large language models"})
        + "\n",
    )
    code, out, _ = run(capsys, "search", "--queries", queries, "-q", "--index", bundled_index)
    assert code == 0 and [f["text"] for f in json.loads(out)["searched"]][1] == "pruning large language models"


def test_an_explicit_id_equal_to_another_entrys_title_id_is_reported_not_a_crash(tmp_path, capsys, embedder):
    corpus = write(
        tmp_path / "dup.jsonl",
        json.dumps({"title": "Foo Bar", "abstract": "About foo."})
        + "\n"
        + json.dumps({"id": "foo-bar", "title": "Other Paper", "abstract": "About something else."})
        + "\n",
    )
    code, out, err = run(capsys, "ingest", corpus, "--index", tmp_path / "idx", "-q")
    assert code == 0 and "1 added" in out and "skipped 1 problem(s)" in out
    assert "id 'foo-bar' already names another paper" in err and "Traceback" not in err


def test_unpaired_surrogates_in_a_file_or_a_query_are_replaced_and_reported_not_a_crash(
    tmp_path, capsys, embedder, bundled_index
):
    """JSON may escape half of a surrogate pair, and a terminal's undecodable bytes reach argv as one; neither
    Chroma nor the tokenizers can encode it. A whole escaped pair (an emoji) is text like any other."""
    corpus = write(
        tmp_path / "surrogates.jsonl",
        '{"id": "cut\\ud800id", "title": "Graph networks for molecules", "abstract": "We study \\udc00 graphs."}\n'
        '{"id": "whole", "title": "Speech \\ud83d\\ude00", "abstract": "Transformers for speech recognition."}\n',
    )
    code, out, err = run(capsys, "ingest", corpus, "--index", tmp_path / "idx", "-q")
    assert code == 0 and "Traceback" not in err, err
    assert "surrogates.jsonl:1: 2 unpaired surrogate escape(s) replaced with U+FFFD" in err and "skipped" not in err
    assert "2 added" in out and "repaired 1 problem(s)" in out, out
    code, out, _ = run(capsys, "search", "graph networks molecules", "--json", "--no-gate", "--index", tmp_path / "idx")
    hits = json.loads(out)["hits"]
    assert code == 0 and hits[0]["id"] == "cut\ufffdid" and "We study \ufffd graphs." in hits[0]["abstract"]
    assert "Speech \U0001f600" in [h["title"] for h in hits]
    code, out, err = run(capsys, "search", "graph \udcff networks", "--json", "--index", bundled_index)
    assert code == 0 and "Traceback" not in err and "not valid Unicode replaced" in err, err
    assert json.loads(out)["query"] == "graph \ufffd networks"


WORDS = st.sampled_from(
    [
        "search",
        "ask",
        "ingest",
        "info",
        "remove",
        "eval",
        "-k",
        "0",
        "5",
        "1001",
        "--mode",
        "bm25",
        "fuzzy",
        "--json",
        "--queries",
        "--format",
        "trec",
        "--history",
        "--no-gate",
        "--qrels",
        "--run",
        "--sets",
        "none",
        "--half",
        "train",
        "--engine",
        "x",
        "--fusion",
        "rrf",
        "-o",
        "",
        " ",
        "lora",
        "\x00",
        "é",
        "--",
        "-q",
    ]
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=8), garbage=st.binary(max_size=300))
def test_random_command_lines_and_files_never_end_in_a_traceback(capsys, tmp_path_factory, words, garbage):
    folder = tmp_path_factory.mktemp("random")
    junk = folder / "junk.jsonl"
    junk.write_bytes(garbage)
    argv = [str(junk) if word == "lora" and i % 2 else word for i, word in enumerate(words)]
    if argv and argv[0] in ("search", "ask", "ingest", "info", "remove"):
        argv += ["--index", str(folder / "idx"), "-q"]
        if argv[0] == "ingest":  # never the bundled corpus: always a (random) file
            argv.insert(1, str(junk))
        if argv[0] in ("search", "ask") and "--queries" not in argv:
            argv += [
                "--chroma-url",
                "http://127.0.0.1:9",
            ]  # nothing listens there: no index gets built, the error is clean
    elif argv and argv[0] == "eval" and "--qrels" not in argv:
        argv = ["eval", "--qrels", str(junk), "--run", str(junk), "--out", str(folder / "out")]
    code, _, err = run(capsys, *argv)
    assert code in (0, 2), (argv, err)
    assert "Traceback" not in err
