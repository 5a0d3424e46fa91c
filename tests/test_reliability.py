"""Scale-out and reliability on real components: a `chroma run` server, SIGKILLed ingests,
concurrent clients against the served app, hostile queries and path-traversal requests."""

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest

from conftest import small_assistant, write
from paperchat import Assistant, PaperchatError
from paperchat.eval.bench import free_port, wait_for_server
from paperchat.index.store import HOLD_AFTER_BATCH
from paperchat.ui.app import launch

TOPICS = [
    "graph neural networks",
    "protein folding",
    "speech recognition",
    "image segmentation",
    "reinforcement learning",
    "machine translation",
    "anomaly detection",
    "time series forecasting",
    "recommender systems",
    "federated learning",
]


def synthetic_corpus(path, count):
    rows = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        abstract = f"We study {topic} with method M{i}. Results improve on baseline B{i % 7}."
        if i % 20 == 0:  # longer than the model's window: these papers also get passage vectors
            abstract += " ".join(f" Ablation {j} varies the {topic} setting of method M{i}." for j in range(30))
        rows.append(json.dumps({"id": f"doc-{i:05d}", "title": f"Study {i} of {topic}", "abstract": abstract}))
    return write(path, "\n".join(rows) + "\n")


# the chroma CLI installed with chromadb beside this interpreter (also when its venv is not activated)
CHROMA = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
assert CHROMA, "the chroma CLI comes with chromadb"


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    executable = CHROMA
    port = free_port()
    process = subprocess.Popen(
        [
            executable,
            "run",
            "--path",
            str(tmp_path_factory.mktemp("chroma-server")),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_server(f"http://127.0.0.1:{port}", seconds=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_ingest_and_search_against_a_real_chroma_server(chroma_server, tmp_path, embedder):
    corpus = synthetic_corpus(tmp_path / "c.jsonl", 40)
    replica_a = small_assistant(tmp_path / "a", embedder, chroma_url=chroma_server)
    _, report = replica_a.ingest([corpus], progress=False)
    assert report.added == 40 and replica_a.info()["documents"] == 40 and replica_a.info()["index"] == chroma_server
    assert replica_a.search("protein folding M11", k=1)[0].id == "doc-00011"
    # A second replica with its own local folder derives its own snapshot from the server's data.
    replica_b = small_assistant(tmp_path / "b", embedder, chroma_url=chroma_server)
    assert replica_b.search("speech recognition M2", k=1, mode="bm25")[0].id == "doc-00002"
    replica_a.remove(["doc-00002"])
    replica_b.refresh(force=True)
    assert "doc-00002" not in [h.id for h in replica_b.search("speech recognition M2", k=5, mode="bm25")]


def test_a_replica_with_its_own_folder_adds_another_replicas_writes_as_one_segment(chroma_server, tmp_path, embedder):
    """Chroma's change log tells a replica which papers changed since its snapshot: it reads those, not everything."""
    writer = small_assistant(
        tmp_path / "w", embedder, synthetic_corpus(tmp_path / "c.jsonl", 30), chroma_url=chroma_server, collection="log"
    )
    reader = small_assistant(tmp_path / "r", embedder, chroma_url=chroma_server, collection="log")
    base = reader.store.snapshot().segments[0]
    messages = []
    reader.store.notify = messages.append
    for step in range(2):  # two writes of 5 new papers between the reader's refreshes: the log chains them
        papers = [
            {"id": f"new-{step}-{i}", "title": f"Protein folding study {step}-{i}", "abstract": f"Method N{step}{i}."}
            for i in range(5)
        ]
        writer.ingest(
            [write(tmp_path / f"more-{step}.jsonl", "\n".join(map(json.dumps, papers)) + "\n")], progress=False
        )
    writer.remove(["doc-00003"])
    snapshot = reader.store.refresh()
    assert messages == [] and snapshot.segments[0] is base and len(snapshot.segments) == 2
    assert snapshot.documents == 39 and len(snapshot.segments[1]) == 10
    assert [h.id for h in reader.search("protein folding N13", k=3, mode="bm25")] == [
        h.id for h in writer.search("protein folding N13", k=3, mode="bm25")
    ]


def test_a_replica_started_again_after_another_replicas_writes_adds_them_as_one_segment(
    chroma_server, tmp_path, embedder
):
    """A replica that was stopped while another one wrote starts from its saved snapshot plus the change log's papers:
    at 1M a full rebuild from Chroma takes over ten minutes."""
    writer = small_assistant(
        tmp_path / "w",
        embedder,
        synthetic_corpus(tmp_path / "c.jsonl", 30),
        chroma_url=chroma_server,
        collection="restart",
    )
    base = small_assistant(tmp_path / "r", embedder, chroma_url=chroma_server, collection="restart").store.snapshot()
    papers = [{"id": f"new-{i}", "title": f"Protein folding study {i}", "abstract": f"Method N{i}."} for i in range(5)]
    writer.ingest([write(tmp_path / "more.jsonl", "\n".join(map(json.dumps, papers)) + "\n")], progress=False)
    writer.remove(["doc-00003"])
    messages = []
    started = Assistant.open(
        tmp_path / "r",
        bootstrap=False,
        load_model=False,
        notify=messages.append,
        chroma_url=chroma_server,
        collection="restart",
    )
    started.store.embedder = embedder
    snapshot = started.store.snapshot()
    assert messages == [] and [s.name for s in snapshot.segments] == [base.segments[0].name, snapshot.segments[1].name]
    assert snapshot.documents == 34 and len(snapshot.segments[1]) == 5
    assert [h.id for h in started.search("protein folding N3", k=3, mode="bm25")] == [
        h.id for h in writer.search("protein folding N3", k=3, mode="bm25")
    ]


def test_a_metadata_only_update_reaches_another_replica(chroma_server, tmp_path, embedder):
    first = write(
        tmp_path / "first.jsonl",
        json.dumps({"id": "m1", "title": "Mixture of experts routing", "abstract": "Sparse expert routing."}) + "\n",
    )
    writer = small_assistant(tmp_path / "w", embedder, first, chroma_url=chroma_server, collection="metadata-replicas")
    reader = small_assistant(tmp_path / "r", embedder, chroma_url=chroma_server, collection="metadata-replicas")
    assert reader.search("expert routing", k=1, mode="bm25")[0].citation.url.startswith("https://arxiv.org/search/")
    moved = write(
        tmp_path / "first.jsonl",
        json.dumps(
            {
                "id": "m1",
                "title": "Mixture of experts routing",
                "abstract": "Sparse expert routing.",
                "url": "https://example.org/moe",
            }
        )
        + "\n",
    )
    _, report = writer.ingest([moved], progress=False)
    assert report.updated_metadata == 1
    reader.refresh(force=True)
    assert reader.search("expert routing", k=1, mode="bm25")[0].citation.url == "https://example.org/moe"


@pytest.mark.slow
def test_a_server_that_fails_mid_session_is_an_error_not_an_empty_index(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [CHROMA, "run", "--path", str(tmp_path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_server(f"http://127.0.0.1:{port}", seconds=60)
        from paperchat.index.chroma import ChromaRepository

        repository = ChromaRepository(
            tmp_path / "local", f"http://127.0.0.1:{port}", "papers", "all-MiniLM-L6-v2", lambda: 384
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    with pytest.raises(PaperchatError, match="cannot read the Chroma collection 'papers'"):
        repository.papers(create=True)


@pytest.mark.slow
def test_chat_keeps_serving_while_another_process_ingests_into_the_same_index(tmp_path):
    """The served app answers from its last snapshot while another process holds the write lock (an
    ingest stopped after its first write batch by the test hook), then shows the paper once the
    ingest is done. The app was started with the default host: it listens on loopback only."""
    index = tmp_path / "index"
    env = {**os.environ, "PAPERCHAT_REFRESH_SECONDS": "1", "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "paperchat.cli"]
    first = synthetic_corpus(tmp_path / "first.jsonl", 30)
    subprocess.run(
        [*cli, "ingest", str(first), "--index", str(index), "-q"], env=env, check=True, capture_output=True, timeout=600
    )
    port = free_port()
    server = subprocess.Popen(
        [*cli, "chat", "--index", str(index), "--port", str(port), "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        from gradio_client import Client

        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(1)
        connections = psutil.Process(server.pid).net_connections("inet")
        listening = [c.laddr for c in connections if c.status == psutil.CONN_LISTEN]
        assert [address.ip for address in listening if address.port == port] == ["127.0.0.1"]
        assert client.predict("protein folding M1", 1, "bm25", api_name="/search")["hits"][0]["id"] == "doc-00001"
        second = write(
            tmp_path / "second.jsonl",
            json.dumps(
                {
                    "id": "late",
                    "title": "Quokka population surveys",
                    "abstract": "Counting quokkas on Rottnest Island with drones.",
                }
            )
            + "\n",
        )
        ingest = [*cli, "ingest", str(second), "--index", str(index), "-q"]
        writer = subprocess.Popen(
            ingest, env={**env, HOLD_AFTER_BATCH: "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            assert "write batch 1 is written" in writer.stderr.readline()  # it holds the lock from here on
            for _ in range(10):  # over three seconds or more: the app (refresh_seconds=1) tries to refresh meanwhile
                served = client.predict("protein folding M1", 1, "bm25", api_name="/search")
                assert served["hits"][0]["id"] == "doc-00001"
                time.sleep(0.3)
            assert writer.poll() is None  # all ten were served while the other process held the index
        finally:
            writer.kill()
            writer.wait(timeout=30)
        subprocess.run(ingest, env=env, check=True, capture_output=True, timeout=600)  # the rerun finishes the ingest
        seen = None
        deadline = time.time() + 30
        while time.time() < deadline and not seen:
            seen = client.predict("quokka surveys on Rottnest Island", 1, "hybrid", api_name="/search")["hits"]
            time.sleep(0.5)
        assert seen and seen[0]["id"] == "late"
        assert client.predict("protein folding M1", 1, "hybrid", api_name="/search")["hits"][0]["id"] == "doc-00001"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_long_lived_assistant_can_write_after_another_process_wrote(tmp_path, embedder):
    index = tmp_path / "index"
    first = synthetic_corpus(tmp_path / "first.jsonl", 10)
    assistant = small_assistant(index, embedder, first)
    second = write(
        tmp_path / "second.jsonl",
        json.dumps({"id": "late", "title": "Quokka surveys", "abstract": "Counting quokkas with drones."}) + "\n",
    )
    subprocess.run(
        [sys.executable, "-m", "paperchat.cli", "ingest", str(second), "--index", str(index), "-q"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    assistant.refresh(force=True)
    assert assistant.search("quokkas", k=1, mode="bm25")[0].id == "late"
    repository = (
        assistant.store.repository
    )  # reads of Chroma itself (a rebuild, HNSW above 20k papers) see the new paper too
    assert "late" in stored_ids(repository) and repository.nearest(embedder.encode_query("quokkas"), 1)[0] == ["late"]
    assert assistant.remove(["late", "doc-00003"]) == ["late", "doc-00003"]
    assert assistant.store.repository.count() == assistant.store.snapshot().documents == 9


def stored_ids(repository) -> list[str]:
    """Every paper id Chroma holds (what a rebuild reads)."""
    return [doc_id for page in repository.id_pages(10_000) for doc_id in page]


def start_chroma(folder, port):
    process = subprocess.Popen(
        [CHROMA, "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_server(f"http://127.0.0.1:{port}", seconds=60)
    return process


def stop(process):
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.slow
def test_a_running_app_says_so_while_the_server_is_down_and_answers_again_once_it_is_back(tmp_path, embedder):
    from gradio_client import Client

    port = free_port()
    server = start_chroma(tmp_path / "data", port)
    app = None
    try:
        url = f"http://127.0.0.1:{port}"
        assistant = small_assistant(
            tmp_path / "replica",
            embedder,
            synthetic_corpus(tmp_path / "c.jsonl", 30),
            chroma_url=url,
            refresh_seconds=0,
        )
        web = free_port()
        app = launch(assistant, port=web, block=False)
        client = Client(f"http://127.0.0.1:{web}/", verbose=False)
        assert client.predict("protein folding M1", 1, "bm25", api_name="/search")["hits"][0]["id"] == "doc-00001"
        stop(server)
        down = client.predict("protein folding M1", 1, "bm25", api_name="/search")
        assert (
            down["error"].startswith(f"the Chroma server at {url} is not answering")
            and "Traceback" not in down["error"]
        )
        reply = client.predict("protein folding", "[]", 3, "hybrid", api_name="/chat")
        assert "is not answering" in reply["error"]
        server = start_chroma(tmp_path / "data", port)
        assert (
            client.predict("protein folding M1", 1, "bm25", api_name="/search")["hits"][0]["id"] == "doc-00001"
        )  # same app, no restart
    finally:
        if app is not None:
            app.close()
        stop(server)


@pytest.mark.slow
def test_an_ingest_cut_off_by_a_server_restart_completes_exactly_when_run_again(tmp_path):
    port = free_port()
    server = start_chroma(tmp_path / "data", port)
    url = f"http://127.0.0.1:{port}"
    corpus = synthetic_corpus(tmp_path / "c.jsonl", 200)
    command = [
        sys.executable,
        "-m",
        "paperchat.cli",
        "ingest",
        str(corpus),
        "--chroma-url",
        url,
        "--index",
        str(tmp_path / "local"),
        "-q",
    ]
    env = {**os.environ, "PAPERCHAT_WRITE_BATCH": "50"}
    try:
        ingest = subprocess.Popen(
            command, env={**env, HOLD_AFTER_BATCH: "2"}, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        assert "write batch 2 is written" in ingest.stderr.readline()
        stop(server)  # the server goes away in the middle of the ingest, which dies with it
        ingest.kill()
        ingest.wait(timeout=30)
        server = start_chroma(tmp_path / "data", port)
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0 and "100 added" in rerun.stdout and "200 papers in the index" in rerun.stdout, (
            rerun.stderr[-2000:]
        )
        reopened = Assistant.open(
            tmp_path / "other", chroma_url=url, bootstrap=False, load_model=False, notify=lambda m: None
        )
        assert (
            sorted(reopened.store.snapshot().ids) == sorted(stored_ids(reopened.store.repository))
            and reopened.store.snapshot().documents == 200
        )
    finally:
        stop(server)


def test_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(PaperchatError, match="cannot reach the Chroma server"):
        Assistant.open(tmp_path, chroma_url=f"http://127.0.0.1:{free_port()}", bootstrap=False, load_model=False)


@pytest.mark.slow
def test_sigkill_midway_through_ingest_loses_nothing(tmp_path):
    corpus = synthetic_corpus(tmp_path / "big.jsonl", 600)
    index = tmp_path / "index"
    env = {**os.environ, "PAPERCHAT_WRITE_BATCH": "50", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "paperchat.cli", "ingest", str(corpus), "--index", str(index), "-q"]
    process = subprocess.Popen(
        command, env={**env, HOLD_AFTER_BATCH: "4"}, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    line = process.stderr.readline()  # the ingest says so once write batch 4 (papers 151-200) is in Chroma
    assert "write batch 4 is written" in line, line
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "400 added" in rerun.stdout  # exactly the 200 papers of the four written batches were kept
    reopened = Assistant.open(index, bootstrap=False, notify=lambda m: None)
    repository = reopened.store.repository
    stored = stored_ids(repository)
    ids, _, _, metadatas, _ = repository.fetch(stored)
    assert len(stored) == len(set(stored)) == len(ids) == repository.count() == 600
    assert sorted(reopened.store.snapshot().ids) == sorted(ids)
    owners = collections.Counter(m["doc"] for m in repository.passages().get(include=["metadatas"])["metadatas"])
    counts = {doc_id: m["passages"] for doc_id, m in zip(ids, metadatas)}
    assert (
        owners == {doc_id: n for doc_id, n in counts.items() if n} and len(owners) == 30
    )  # every long paper, no strays
    assert reopened.search("time series forecasting M307", k=1)[0].id == "doc-00307"


def test_assistant_is_safe_to_share_between_threads(assistant):
    questions = {
        "Lastde++": "training-free-llm-generated-text-detection-by-mining-token-probability-sequences",
        "Light Schrödinger Bridge": "light-schrodinger-bridge",
    }

    def ask(i):
        question = list(questions)[i % 2]
        return assistant.search(question, k=1)[0].id == questions[question]

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(ask, range(64)))


@pytest.fixture(scope="module")
def served(assistant):
    port = free_port()
    app = launch(assistant, port=port, block=False)
    yield f"http://127.0.0.1:{port}"
    app.close()


def test_load_16_clients_x_50_requests_all_correct(served):
    """800 requests from 16 concurrent clients: every one answered, every answer right. How fast is
    printed, not asserted: it says how fast this machine is, not whether the app is correct."""
    from gradio_client import Client

    cases = [
        ("Lastde++", "training-free-llm-generated-text-detection-by-mining-token-probability-sequences"),
        ("Light Schrödinger Bridge", "light-schrodinger-bridge"),
        ("compressing pre-trained models of code into 3 MB", "compressing-pre-trained-models-of-code-into-3-mb"),
        ("PDP parameter-free differentiable pruning", "pdp-parameter-free-differentiable-pruning-is-all-you-need"),
    ]

    def client_run(worker: int) -> list[tuple[str, str, str | None, float]]:
        client = Client(served + "/", verbose=False)
        answers = []
        for i in range(50):
            question, expected = cases[(worker + i) % len(cases)]
            started = time.perf_counter()
            hits = client.predict(question, 3, "hybrid", api_name="/search").get("hits")
            elapsed_ms = (time.perf_counter() - started) * 1000
            answers.append((question, expected, hits[0]["id"] if hits else None, elapsed_ms))
        return answers

    with ThreadPoolExecutor(16) as pool:  # a client's exception is raised here, not lost in its thread
        answers = [answer for worker in pool.map(client_run, range(16)) for answer in worker]
    assert len(answers) == 800
    assert [(question, found) for question, expected, found, _ in answers if found != expected] == []
    latencies = [elapsed for *_, elapsed in answers]
    print(
        f"\nload test: 16 clients x 50 requests: p50 {np.percentile(latencies, 50):.0f} ms, "
        f"p95 {np.percentile(latencies, 95):.0f} ms"
    )


def private_files(assistant) -> list[Path]:
    """Files a served app must never hand out: the index's records, its Chroma database, the ONNX model copy,
    /etc/passwd."""
    snapshot_files = sorted(assistant.store.snapshot_folder.rglob("records.jsonl"))
    return [
        snapshot_files[0],
        assistant.settings.index / "chroma" / "chroma.sqlite3",
        next(assistant.settings.cache_dir.rglob("*.onnx")),
        Path("/etc/passwd"),
    ]


@pytest.mark.parametrize(
    "route",
    [
        "/file={}",
        "/gradio_api/file={}",
        "/gradio_api/file=../../../..{}",
        "/file=../../../../..{}",
        "/static/../../../..{}",
        "/assets/..%2f..%2f..%2f..{}",
        "/gradio_api/file={relative}",
        "/file={relative}",
    ],
)
def test_path_traversal_never_returns_the_indexs_own_files_or_system_files(assistant, served, route):
    for path in private_files(assistant):
        secret = path.read_bytes()[:48]
        assert len(secret) == 48 or path.name == "passwd"
        relative = os.path.relpath(path, Path.cwd())
        url = served + route.format(urllib.parse.quote(str(path)), relative=urllib.parse.quote(relative))
        try:
            body = urllib.request.urlopen(url, timeout=10).read()
        except urllib.error.HTTPError as error:
            body = error.read()
        assert secret not in body and b"root:x:0:0" not in body, (url, body[:200])


def test_auth_refuses_unauthenticated_requests(assistant):
    port = free_port()
    app = launch(assistant, port=port, auth="alice:s3cret", block=False)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/gradio_api/info")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code in (401, 403)
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{port}/", auth=("alice", "s3cret"), verbose=False)
        assert client.predict("Lastde++", 1, "hybrid", api_name="/search")["hits"]
    finally:
        app.close()


@pytest.mark.parametrize(
    "query, searched",
    [
        ("\x00\x01\x1b[31mred\x07", "[31mred"),
        ("🤖🔥 LoRA 🚀", "🤖🔥 LoRA 🚀"),
        (".*(a+)+$ [[", ".*(a+)+$ [["),
        ("'; DROP TABLE papers; --", "'; DROP TABLE papers; --"),
        ("\u202e\u200bpruning", "pruning"),
    ],
)
def test_hostile_queries_are_searched_as_cleaned_text(assistant, query, searched):
    result = assistant.retrieve(query, k=3, gate=False)
    assert result.query == searched and len(result.closest) == 3 and not result.notices


def test_a_huge_query_is_cut_with_a_notice_and_an_empty_one_is_an_error(assistant):
    result = assistant.retrieve("pruning " * 200_000, k=3)
    assert len(result.query) <= 2000 and result.notices and result.hits[0].id
    for empty in ("", "\x00\x07 \u200b", "\u202e"):
        with pytest.raises(PaperchatError, match="the query is empty"):
            assistant.retrieve(empty, k=3)


WRITER = """
import json, sys
from pathlib import Path
from paperchat import Assistant

index, corpus, scratch = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
writer = Assistant.open(index, bootstrap=False, load_model=False, progress=False, notify=lambda message: None)
papers = [json.loads(line) for line in corpus.read_text().splitlines()]
written = 0
for line in sys.stdin:  # a number: write that many times, then say so
    for _ in range(int(line)):
        written += 1
        paper = {**papers[written % len(papers)], "url": f"https://example.org/moved/{written}"}
        scratch.write_text(json.dumps(paper) + "\\n")
        writer.ingest([scratch], progress=False)  # a metadata-only update: a new url
    print(paper["id"], paper["url"], flush=True)
"""


@pytest.mark.slow
def test_another_process_writing_100_times_leaves_this_processs_threads_and_memory_flat(tmp_path, embedder):
    """Each refresh after another process's writes reopens the embedded store; the old view must be
    stopped, not left running beside the new one (threads and memory would grow with every write)."""
    index = tmp_path / "index"
    corpus = synthetic_corpus(tmp_path / "c.jsonl", 10)
    reader = small_assistant(index, embedder, corpus)
    script = write(tmp_path / "writer.py", WRITER)
    writer = subprocess.Popen(
        [sys.executable, str(script), str(index), str(corpus), str(tmp_path / "w.jsonl")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    this = psutil.Process()
    footprints = []
    try:
        for _ in range(20):  # 20 rounds of 5 writes, each round followed by a refresh here
            writer.stdin.write("5\n")
            writer.stdin.flush()
            doc_id, url = writer.stdout.readline().split()
            reader.refresh(force=True)
            hit = reader.search(f"Study {int(doc_id[4:])} of", k=1, mode="bm25")[0]
            assert (hit.id, hit.citation.url) == (doc_id, url)  # the reopened store reads the other process's write
            footprints.append((this.num_threads(), this.memory_info().rss))
    finally:
        writer.stdin.close()
        writer.wait(timeout=60)
    (threads_first, rss_first), (threads_last, rss_last) = footprints[0], footprints[-1]
    print(
        f"\nafter 100 writes elsewhere: threads {threads_first} -> {threads_last}, "
        f"RSS {rss_first >> 20} -> {rss_last >> 20} MB"
    )
    assert threads_last <= threads_first + 2
    assert rss_last - rss_first < 150 << 20
