"""`paperchat bench` / `python -m paperchat.eval.bench`: query latency, ingest throughput, memory and disk
at growing corpus sizes, paperchat side by side with the stack people usually assemble
(rank_bm25 + the same Chroma collection + a sentence-transformers query embedding + RRF).

Corpora are synthetic: abstracts resampled sentence by sentence from the bundled corpus (and
any --extra files), so vocabulary and lengths are realistic. Above --embed-limit the vector of a
document (and of each passage) is the mean of its sentences' real MiniLM vectors: embedding 100k
abstracts takes hours on 2 CPU cores, which belongs to the ingest figures (measured at the smaller
sizes), not to a latency run. Every timing is the median of repeated runs in one process after a
warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from paperchat.api import Assistant
from paperchat.eval.datasets import load_bundled_set
from paperchat.fusion import rrf
from paperchat.index.bm25 import top_positions
from paperchat.index.chroma import READ_BATCH
from paperchat.index.embeddings import QUERY_THREADS, Embedder, torch_forward
from paperchat.index.errors import PaperchatError
from paperchat.index.loaders import load_bundled, load_paths
from paperchat.index.papers import Paper
from paperchat.index.snapshot import MANIFEST
from paperchat.search import EXACT_SEARCH_LIMIT, Formulation
from paperchat.snippets import make_snippet, split_sentences

REPEATS = 3
ONE_PERCENT = {"since": "2050", "until": "2050"}  # synthetic papers are dated 2000-2099, 1% a year
WARMUP = 10
INGEST_PAGE = 125_000  # papers per ingest call: what one call holds in memory (and one segment)
TOPIC_WINDOW = 24  # pool sentences a synthetic abstract draws from (sentence_pool keeps each paper's together)


def sentence_pool(extra: Sequence[Path]) -> list[str]:
    papers, _ = load_bundled()
    for path in extra:
        if path.exists():
            papers += load_paths([path])[0]
    return [s for p in papers for s in split_sentences(p.abstract) if 30 <= len(s) <= 400]


def synthetic_papers(pool: list[str], count: int, seed: int = 13, start: int = 0) -> list[Paper]:
    """Papers made of 5-9 pool sentences each, numbered from `start`. The sentences come from a window of
    TOPIC_WINDOW neighbouring pool sentences (about three source abstracts), so that each paper keeps to a topic as
    a real abstract does; sentences drawn from the whole pool would make every vector an average of the corpus,
    crowded round its centre, which no real collection is (and on which HNSW finds neighbours poorly)."""
    rng = random.Random(seed)
    papers = []
    window = min(TOPIC_WINDOW, len(pool))
    for i in range(start, start + count):
        first = rng.randrange(len(pool) - window + 1)
        chosen = rng.sample(range(first, first + window), rng.randint(5, min(9, window)))
        title = " ".join(pool[chosen[0]].split()[:10]).rstrip(".,;:")
        abstract = " ".join(pool[j] for j in chosen)
        papers.append(
            Paper(
                id=f"syn-{i:06d}",
                title=f"{title} ({i})",
                abstract=abstract,
                pages=["synthetic"],
                dates=[""],
                code_links=[],
                date=str(2000 + i % 100),
            )
        )  # each year holds 1% of the papers: what the filtered timing selects
    return papers


def make_queries(pool: list[str], count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    questions = [q.text for q in load_bundled_set("questions").queries]
    queries = list(questions)
    while len(queries) < count:
        words = re.findall(r"[A-Za-z][\w-]+", rng.choice(pool))
        start = rng.randrange(max(1, len(words) - 6))
        queries.append(" ".join(words[start : start + rng.randint(2, 7)]))
    rng.shuffle(queries)
    return queries[:count]


class ComposedEmbedder(Embedder):
    """For corpora too large to embed on a CPU in a benchmark run: the vector of a document or
    passage is the mean of the real MiniLM vectors of the pool sentences it holds (each distinct
    sentence embedded once). Queries and texts holding no pool sentence go through the real model."""

    def __init__(self, pool: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.by_sentence = dict(zip(pool, super().encode(pool)))

    def _compose(self, text: str) -> np.ndarray | None:
        known = [self.by_sentence[s] for s in split_sentences(text.partition("\n")[2] or text) if s in self.by_sentence]
        if not known:
            return None
        mean = np.mean(known, axis=0)
        return mean / np.linalg.norm(mean)

    def encode(self, texts: list[str]) -> np.ndarray:
        composed = [self._compose(text) for text in texts]
        missing = [i for i, vector in enumerate(composed) if vector is None]
        for i, vector in zip(missing, super().encode([texts[i] for i in missing]) if missing else []):
            composed[i] = vector
        return np.stack(composed).astype(np.float32) if composed else np.zeros((0, self.dimension), dtype=np.float32)


class TimedEmbedder(Embedder):
    """The real model, with the time spent in document encoding added up (for the ingest split)."""

    seconds = 0.0

    def encode(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return super().encode(texts)
        finally:
            self.seconds += time.perf_counter() - started


def latency(
    fn: Callable[[str], object],
    queries: list[str],
    before_each: Callable[[], None] = lambda: None,
    budget_seconds: float | None = None,
) -> dict:
    """p50/p95 in ms over queries, each query's time the median of REPEATS runs after a warm-up.

    With `budget_seconds`, queries stop once that much time is spent (at least one is timed) and the
    result says how many were timed: for a stack whose query takes seconds at a million papers."""
    started_all = time.perf_counter()
    for query in queries[: 1 if budget_seconds else WARMUP]:
        before_each()
        fn(query)
    per_query = []
    for query in queries:
        if budget_seconds and per_query and time.perf_counter() - started_all > budget_seconds:
            break
        runs = []
        for _ in range(REPEATS):
            before_each()
            started = time.perf_counter()
            fn(query)
            runs.append((time.perf_counter() - started) * 1000)
        per_query.append(statistics.median(runs))
    timed = {
        "p50_ms": round(float(np.percentile(per_query, 50)), 2),
        "p95_ms": round(float(np.percentile(per_query, 95)), 2),
    }
    return timed if len(per_query) == len(queries) else {**timed, "queries_timed": len(per_query)}


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def anonymous_mb() -> int | None:
    """This process's anonymous memory (RssAnon: heap, loaded models, embedded Chroma's HNSW graph): what one more
    replica on the host adds, since the pages of mapped index files are shared. None where /proc does not say."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(r"^RssAnon:\s+(\d+) kB", status, re.MULTILINE)
    return round(int(found.group(1)) / 1024) if found else None


def bench_size(
    size: int,
    pool: list[str],
    queries: list[str],
    workdir: Path,
    composed: bool,
    common_stack_max_size: int = 100_000,
    common_stack_seconds: float = 300.0,
    hnsw_ef: Sequence[int] = (),
    reuse_index: bool = False,
) -> dict:
    index = workdir / f"index-{size}"
    embedder: Embedder = ComposedEmbedder(pool) if composed else TimedEmbedder()
    ingested = workdir / f"ingest-{size}.json"
    if reuse_index and ingested.exists() and index.is_dir():
        assistant = Assistant.open(index, bootstrap=False, load_model=False, notify=lambda m: None)
        assistant.store.embedder = embedder
        result = json.loads(ingested.read_text())
    else:
        shutil.rmtree(index, ignore_errors=True)
        assistant = Assistant.open(index, bootstrap=False, load_model=False, notify=lambda m: None)
        assistant.store.embedder = embedder
        result = _ingest_corpus(assistant, pool, size, composed)
        result["index_mb"] = round(folder_size(index) / 2**20, 1)
        ingested.write_text(json.dumps(result, indent=2))

    def keep() -> None:  # what is measured so far, for a run stopped before the end (a 1M run takes hours)
        (workdir / f"partial-{size}.json").write_text(json.dumps(result, indent=2))

    result["page_of_50"] = _add_a_page(assistant, Assistant.open(index, bootstrap=False, notify=lambda m: None), pool)
    keep()
    result["serving_process"] = _in_fresh_process(  # as a replica serving this index would be: its RSS and latency
        index, workdir / f"serving-{size}", queries, "--exact-neighbours", str(workdir / f"exact-{size}.json")
    )
    keep()
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "paperchat.cli", "search", "warm start", "-k", "1", "-q", "--index", str(index)],
        check=True,
        capture_output=True,
    )
    result["cli_search_seconds"] = round(time.perf_counter() - started, 2)
    result["hnsw_sweep"] = _hnsw_sweep(
        index, assistant, queries, workdir / f"hnsw-{size}", hnsw_ef, workdir / f"exact-{size}.json"
    )
    keep()
    for manifest in (index / "snapshots").rglob(MANIFEST):
        manifest.unlink()  # so this open builds the snapshot from Chroma, as a replica that finds none does
    started = time.perf_counter()
    searcher = Assistant.open(index, bootstrap=False, notify=lambda m: None)
    result["open_with_rebuild_seconds"] = round(time.perf_counter() - started, 1)
    keep()
    result.update(query_parts(searcher, queries))

    if size > common_stack_max_size:
        result["common_stack"] = None  # rank_bm25 over a million abstracts: minutes to build, seconds a query
    else:  # in a fresh process too, as the serving process it is compared with: neither holds the bench's writer
        seconds = ("--common-stack-seconds", str(common_stack_seconds))
        common = _in_fresh_process(index, workdir / f"common-stack-{size}", queries, "--common-stack", *seconds)
        result.update(common["common"])
    result["rss_mb_after_search"] = round(rss_mb(), 0)
    keep()
    result["server_replica"] = _server_replica(
        index,
        assistant.store.snapshot_folder,
        pool,
        queries,
        workdir / f"server-{size}",
        workdir / f"exact-{size}.json",
    )  # last: see there
    keep()
    return result


def _ingest_corpus(assistant: Assistant, pool: list[str], size: int, composed: bool) -> dict:
    """Ingest `size` synthetic papers, INGEST_PAGE at a time (as a big file is ingested in parts: each call holds
    one page of papers, and the snapshot gains one segment a page); the throughput, and the embedding's share."""
    embedder = assistant.store.embedder
    raw_rate = None
    if not composed:  # raw encode of the texts ingest embeds: the abstracts and their passages
        sample = synthetic_papers(pool, min(size, 1000))
        texts = [p.text for p in sample] + [text for parts in assistant.store.passages(sample) for text in parts]
        embedder.encode(texts[:32])
        started = time.perf_counter()
        embedder.encode(texts)
        raw_rate = len(sample) / (time.perf_counter() - started)
        embedder.seconds = 0.0
    started = time.perf_counter()
    for page, start in enumerate(range(0, size, INGEST_PAGE)):
        count = min(INGEST_PAGE, size - start)
        print(f"   page {page + 1} of {-(-size // INGEST_PAGE)}: {count:,} papers", file=sys.stderr)
        assistant.store.ingest(synthetic_papers(pool, count, seed=13 + page, start=start), progress=True)
    ingest_seconds = time.perf_counter() - started
    embed_seconds = getattr(embedder, "seconds", 0.0)
    return {
        "documents": size,
        "vectors": "composed from real sentence embeddings" if composed else "real MiniLM",
        "ingest_seconds": round(ingest_seconds, 1),
        "ingest_pages": -(-size // INGEST_PAGE),
        "ingest_per_second": round(size / ingest_seconds, 1),
        "embedding_seconds": round(embed_seconds, 1),
        "indexing_seconds": round(ingest_seconds - embed_seconds, 1),
        "raw_encode_per_second": round(raw_rate, 1) if raw_rate else None,
    }


def _hnsw_sweep(
    index: Path, writer: Assistant, queries: list[str], out: Path, values: Sequence[int], exact: Path
) -> list[dict]:
    """HNSW recall and latency at each ef_search in `values`, each in a fresh process (Chroma applies ef_search when
    it loads the HNSW index); the collection's own value is restored after."""
    collection = writer.store.repository.papers()
    own = collection.configuration_json["hnsw"]["ef_search"]
    found = []
    try:
        for value in values:
            collection.modify(configuration={"hnsw": {"ef_search": value}})
            found.append(
                _in_fresh_process(index, out, queries, "--recall-only", "--exact-neighbours", str(exact))["hnsw"]
            )
    finally:
        collection.modify(configuration={"hnsw": {"ef_search": own}})
    return found


def new_page(writer: Assistant, pool: list[str]) -> list[Paper]:
    """A Daily Papers page: 50 papers whose ids `writer`'s index does not hold yet, also when a run measures a
    reused index again."""
    held = writer.store.snapshot().documents
    return synthetic_papers(pool, 50, seed=held, start=held)


def _add_a_page(writer: Assistant, replica: Assistant, pool: list[str]) -> dict:
    """A Daily Papers page (`new_page`) ingested by `writer`: its time (its embedding apart) and how long
    `replica`, another client of the same index, then takes to find them (it loads or derives the new segment)."""
    page = new_page(writer, pool)
    embedder = writer.store.embedder
    before = getattr(embedder, "seconds", 0.0)
    started = time.perf_counter()
    writer.store.ingest(page, progress=False)
    ingest_seconds = time.perf_counter() - started
    embedding_seconds = getattr(embedder, "seconds", 0.0) - before
    started = time.perf_counter()
    replica.refresh(force=True)
    found = replica.store.snapshot().positions([p.id for p in page])
    return {
        "ingest_seconds": round(ingest_seconds, 2),
        "embedding_seconds": round(embedding_seconds, 2),
        "replica_refresh_seconds": round(time.perf_counter() - started, 2),
        "replica_found": int((found >= 0).sum()),
        "segments": len(replica.store.snapshot().segments),
    }


def _server_replica(index: Path, local: Path, pool: list[str], queries: list[str], folder: Path, exact: Path) -> dict:
    """A replica on a `chroma run` server over the index's Chroma folder, as several replicas share one index: in a
    fresh process its open time, memory and new-query latency; then a page written through the server by another
    client, and how long the replica takes to find it. Each client has its own folder, starting from the index's
    snapshot at `local` (hard links: it is derived from the same Chroma data, as a replica whose snapshot is current
    has it). Nothing in this process opens the Chroma folder while the server holds it."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # this process's embedded clients let go of the Chroma folder first
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma") or "chroma"
    server = subprocess.Popen(
        [chroma, "run", "--path", str(index / "chroma"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_server(url, server)
        clients = {name: folder / name for name in ("replica", "writer")}
        for client in clients.values():
            shutil.rmtree(client, ignore_errors=True)
            served = client / "snapshots" / urllib.parse.quote(url, safe="") / local.name
            shutil.copytree(local, served, copy_function=os.link, ignore=shutil.ignore_patterns("*.lock"))
        started = time.perf_counter()
        measured = _in_fresh_process(
            clients["replica"], folder / "serving", queries, "--chroma-url", url, "--exact-neighbours", str(exact)
        )
        measured["process_seconds"] = round(time.perf_counter() - started, 1)
        replica = Assistant.open(clients["replica"], chroma_url=url, bootstrap=False, notify=lambda m: None)
        writer = Assistant.open(
            clients["writer"], chroma_url=url, bootstrap=False, load_model=False, notify=lambda m: None
        )
        writer.store.embedder = ComposedEmbedder(pool)
        measured["page_of_50"] = _add_a_page(writer, replica, pool)
        import psutil

        measured["server_rss_mb"] = round(psutil.Process(server.pid).memory_info().rss / 2**20)
        return measured
    finally:
        server.terminate()
        server.wait(timeout=120)


def _in_fresh_process(index: Path, out: Path, queries: list[str], *options: str) -> dict:
    """What `paperchat bench --search-only INDEX` with `options` wrote to `out`/search-only.json, run in a fresh
    process (nothing else has run in it) on as many queries."""
    subprocess.run(
        [sys.executable, "-m", "paperchat.eval.bench", "--search-only", str(index), "--queries", str(len(queries))]
        + ["--out", str(out), *options],
        check=True,
        capture_output=True,
    )
    return json.loads((out / "search-only.json").read_text())


def free_port() -> int:
    """A TCP port free on the loopback interface now (for a server started next; the tests use it too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(
    url: str, process: subprocess.Popen | None = None, seconds: float = 600.0, path: str = "/api/v2/heartbeat"
) -> None:
    """Until the server at `url` answers `path` (a Chroma server's heartbeat by default: it loads nothing before that
    at any size); `process`, when given, must not exit meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with status {process.returncode}")
        try:
            urllib.request.urlopen(f"{url}{path}", timeout=5)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the server at {url} did not answer within {seconds:.0f} s")


def _common_stack(searcher: Assistant, queries: list[str], budget_seconds: float) -> dict:
    """The stack people usually assemble, on the same collection: rank_bm25 + Chroma's k-NN + the same
    query model + RRF; its queries stop after `budget_seconds` (the count timed is then reported)."""
    import torch
    from rank_bm25 import BM25Okapi

    store = searcher.store
    snapshot = store.snapshot()
    result: dict = {}
    ids, documents = list(snapshot.ids), [snapshot.records.get(row)[0] for row in range(len(snapshot))]
    started = time.perf_counter()
    common_bm25 = BM25Okapi([d.lower().split() for d in documents])
    result["common_stack_bm25_build_seconds"] = round(time.perf_counter() - started, 1)
    model = store.embedder.model

    def common_stack(query: str) -> list[str]:
        torch.set_num_threads(
            QUERY_THREADS
        )  # the same query-embedding threads as paperchat: a like-for-like comparison
        scores = common_bm25.get_scores(query.lower().split())
        bm25_top = [ids[i] for i in np.argsort(-scores)[:100]]
        vector = model.encode([query], normalize_embeddings=True)[0]
        dense = store.repository.papers().query(
            query_embeddings=[vector], n_results=100, include=["documents", "distances"]
        )["ids"][0]
        fused = rrf({"bm25": bm25_top, "vector": dense}, 60)
        return sorted(fused, key=fused.get, reverse=True)[:10]

    result["common_stack"] = latency(common_stack, queries, budget_seconds=budget_seconds)
    return result


def query_parts(searcher: Assistant, queries: list[str]) -> dict:
    """Hybrid search end to end (new queries, then with the embedding cached) and each of its parts alone."""
    store = searcher.store
    snapshot = store.snapshot()
    clear = store.embedder._cache.clear
    parts = {
        "paperchat_hybrid": latency(lambda q: searcher.retrieve(q, k=10), queries, clear),
        "paperchat_hybrid_cached_embedding": latency(lambda q: searcher.retrieve(q, k=10), queries),
        "query_backend": store.embedder.active_query_backend,
        "part_query_embedding": latency(store.embedder.encode_query, queries, clear),
        "part_query_embedding_torch": latency(lambda q: torch_forward(store.embedder.model, q), queries),
    }
    vectors = {q: store.embedder.encode_query(q) for q in queries}
    parts["part_vector_knn"] = latency(lambda q: searcher.searcher.nearest(snapshot, vectors[q], 100), queries)
    parts["part_bm25"] = latency(lambda q: snapshot.bm25.search(snapshot.tokenizer.tokens(q), 100), queries)
    sides = {
        q: searcher.searcher.score_sides(snapshot, [Formulation(q)], [(snapshot.tokenizer.tokens(q), 1.0)], 100)
        for q in queries
    }
    parts["part_fusion_and_snippets"] = latency(lambda q: _fuse_and_snippets(searcher, sides[q], q), queries)
    return parts


def _fuse_and_snippets(assistant: Assistant, sides, query: str) -> None:
    snapshot = sides.snapshot
    terms = snapshot.tokenizer.tokens(query)
    fused = assistant.searcher.fuse(sides, "hybrid", assistant.settings, terms)
    for i in np.argsort(-fused)[:10]:
        make_snippet(snapshot.paper(int(sides.positions[i])).abstract, terms, snapshot.tokenizer)


def hnsw_recall(assistant: Assistant, queries: list[str], k: int = 100, exact_file: Path | None = None) -> dict:
    """Recall@k of Chroma's HNSW neighbours (what search takes above the exact-scan limit) against an exact scan of
    Chroma's own float32 document vectors, and the HNSW query's latency; with the cosine of the exact 1st and k-th
    neighbours (medians), which says how crowded the neighbourhood is. A fresh process loads the HNSW index with the
    collection's ef_search. The exact neighbours are kept in `exact_file` when given, for the next process of the
    same run (at 1M, reading every vector back from Chroma takes minutes; the answer does not depend on ef)."""
    store = assistant.store
    collection = store.repository.papers()
    wanted = min(k, collection.count())
    vectors = {q: store.embedder.encode_query(q) for q in queries}
    key = f"{store.repository.fingerprint()}:{wanted}:{len(queries)}"
    kept = json.loads(exact_file.read_text()) if exact_file is not None and exact_file.exists() else {}
    if kept.get("key") != key:
        ids, pages = [], []
        for offset in range(0, collection.count(), READ_BATCH):
            page = collection.get(include=["embeddings"], limit=READ_BATCH, offset=offset)
            ids += page["ids"]
            pages.append(np.asarray(page["embeddings"], dtype=np.float32))
        similarities = np.concatenate(pages) @ np.vstack(list(vectors.values())).T
        del pages
        tops = [top_positions(similarities[:, c], wanted, positive_only=False) for c in range(len(queries))]
        kept = {
            "key": key,
            "neighbours": [[ids[i] for i in top] for top in tops],
            "first_and_last": [
                [float(similarities[t[0], c]), float(similarities[t[-1], c])] for c, t in enumerate(tops)
            ],
        }
        if exact_file is not None:
            exact_file.write_text(json.dumps(kept))
    recalls = [
        len(set(exact) & set(store.repository.nearest(vector, wanted)[0])) / wanted
        for exact, vector in zip(kept["neighbours"], vectors.values())
    ]
    first, last = zip(*kept["first_and_last"])
    return {
        **{
            key: collection.configuration_json["hnsw"][key] for key in ("ef_search", "max_neighbors", "ef_construction")
        },
        f"recall_at_{k}": round(float(np.mean(recalls)), 4),
        "lowest": round(min(recalls), 2),
        "exact_cosine_first_and_last": [round(float(np.median(first)), 3), round(float(np.median(last)), 3)],
        "hnsw_query": latency(lambda q: store.repository.nearest(vectors[q], wanted), queries),
    }


def search_only(
    index: Path,
    queries: list[str],
    recall_only: bool = False,
    exact_file: Path | None = None,
    chroma_url: str | None = None,
    common_stack_seconds: float | None = None,
) -> dict:
    """Latency and memory of searching an existing index (on a Chroma server with `chroma_url`) in this (fresh)
    process: nothing else has run in it. Also the recall of Chroma's HNSW candidates (alone with `recall_only`;
    search takes them above the exact-scan limit). With `common_stack_seconds`, only the common stack on the same
    index, timed for at most that long."""
    started = time.perf_counter()
    assistant = Assistant.open(index, chroma_url=chroma_url, bootstrap=False, notify=lambda m: None)
    assistant.store.snapshot()
    open_seconds = round(time.perf_counter() - started, 2)
    if recall_only:
        return {"hnsw": hnsw_recall(assistant, queries, exact_file=exact_file)}
    if common_stack_seconds is not None:
        return {"common": _common_stack(assistant, queries, common_stack_seconds)}
    embedder = assistant.store.embedder
    measured = {
        "index": chroma_url or str(index),
        "open_seconds": open_seconds,
        "documents": assistant.info()["documents"],
        "query_backend": embedder.active_query_backend,
        "new_query": latency(lambda q: assistant.retrieve(q, k=10), queries, embedder._cache.clear),
        "repeated_query": latency(lambda q: assistant.retrieve(q, k=10), queries),
        "filtered_1pct_query": latency(
            lambda q: assistant.retrieve(q, k=10, where=ONE_PERCENT), queries, embedder._cache.clear
        ),
        "query_embedding": latency(embedder.encode_query, queries, embedder._cache.clear),
        "rss_mb": round(rss_mb()),
        "anonymous_mb": anonymous_mb(),
    }
    return {
        **measured,
        "hnsw": hnsw_recall(assistant, queries, exact_file=exact_file),
    }  # last: it reads every vector, which memory keeps


def print_table(results: list[dict]) -> None:
    rows = [
        ("documents", lambda r: f"{r['documents']:,}"),
        ("vectors", lambda r: r["vectors"]),
        (
            "paperchat hybrid p50 / p95 ms (in the bench process)",
            lambda r: f"{r['paperchat_hybrid']['p50_ms']} / {r['paperchat_hybrid']['p95_ms']}",
        ),
        (
            "  same, cached query embedding",
            lambda r: (
                f"{r['paperchat_hybrid_cached_embedding']['p50_ms']} / "
                f"{r['paperchat_hybrid_cached_embedding']['p95_ms']}"
            ),
        ),
        ("common stack p50 / p95 ms (a fresh process)", _common_stack_cell),
        ("speed-up (p50): against the serving process (the bench process)", _speedup_cell),
        (
            "serving process: new query p50 / p95 ms",
            lambda r: f"{r['serving_process']['new_query']['p50_ms']} / {r['serving_process']['new_query']['p95_ms']}",
        ),
        ("  its query embedding p50 (the floor)", lambda r: r["serving_process"]["query_embedding"]["p50_ms"]),
        ("  its RSS MB (anonymous: what one more replica adds)", _memory_cell),
        (f"HNSW recall@100 vs exact scan, by ef_search (used above {EXACT_SEARCH_LIMIT:,})", _hnsw_cell),
        ("part: query embedding p50", lambda r: f"{r['part_query_embedding']['p50_ms']} ({r['query_backend']})"),
        ("  same through torch", lambda r: r["part_query_embedding_torch"]["p50_ms"]),
        ("part: vector k-NN p50 (exact scan <= 20k, Chroma HNSW above)", lambda r: r["part_vector_knn"]["p50_ms"]),
        ("part: BM25 p50", lambda r: r["part_bm25"]["p50_ms"]),
        ("part: fusion + snippets p50", lambda r: r["part_fusion_and_snippets"]["p50_ms"]),
        ("ingest abstracts/s (end to end)", lambda r: r["ingest_per_second"]),
        ("  raw encode abstracts/s", lambda r: r["raw_encode_per_second"] or "-"),
        ("  embedding / indexing s", lambda r: f"{r['embedding_seconds']} / {r['indexing_seconds']}"),
        ("index on disk MB", lambda r: r["index_mb"]),
        (
            "50-paper page: ingest s (its embedding s)",
            lambda r: f"{r['page_of_50']['ingest_seconds']} ({r['page_of_50']['embedding_seconds']})",
        ),
        (
            "  a replica on the folder finds it after s",
            lambda r: f"{r['page_of_50']['replica_refresh_seconds']} ({r['page_of_50']['replica_found']}/50 found)",
        ),
        ("RSS after searching MB", lambda r: r["rss_mb_after_search"]),
        (
            "replica on a `chroma run` server: new query p50 / p95 ms",
            lambda r: f"{r['server_replica']['new_query']['p50_ms']} / {r['server_replica']['new_query']['p95_ms']}",
        ),
        ("  its open s; RSS MB (anonymous)", _server_memory_cell),
        (
            "  a page through the server: ingest s; replica finds it after s",
            lambda r: (
                f"{r['server_replica']['page_of_50']['ingest_seconds']}; "
                f"{r['server_replica']['page_of_50']['replica_refresh_seconds']}"
            ),
        ),
        ("  the server's RSS MB", lambda r: r["server_replica"]["server_rss_mb"]),
        ("`paperchat search` wall s (cold start)", lambda r: r["cli_search_seconds"]),
        ("open with a snapshot rebuilt from Chroma s", lambda r: r["open_with_rebuild_seconds"]),
    ]
    width = max(len(name) for name, _ in rows)
    for name, cell in rows:
        print(name.ljust(width), " | ".join(str(cell(r)).rjust(22) for r in results))


def _memory_cell(result: dict) -> str:
    serving = result["serving_process"]
    return f"{serving['rss_mb']} ({serving.get('anonymous_mb') or '-'})"


def _server_memory_cell(result: dict) -> str:
    replica = result["server_replica"]
    return f"{replica['open_seconds']}; {replica['rss_mb']} ({replica.get('anonymous_mb') or '-'})"


def _hnsw_cell(result: dict) -> str:
    """ef_search: recall (HNSW query p50 ms), for each value swept."""
    sweep = result.get("hnsw_sweep") or []
    return ", ".join(f"{h['ef_search']}: {h['recall_at_100']} ({h['hnsw_query']['p50_ms']} ms)" for h in sweep) or "-"


def _speedup_cell(result: dict) -> str:
    """The common stack against paperchat, each in a fresh process of its own (and against the bench process's
    paperchat, which also holds the writer and torch)."""
    common = result["common_stack"]
    if not common:
        return "-"
    serving, in_bench = result["serving_process"]["new_query"]["p50_ms"], result["paperchat_hybrid"]["p50_ms"]
    return f"{common['p50_ms'] / serving:.1f}x ({common['p50_ms'] / in_bench:.1f}x)"


def _common_stack_cell(result: dict) -> str:
    timed = result.get("common_stack")
    if timed is None:
        return "not run (above --common-stack-max-size)"
    capped = f" ({timed['queries_timed']} queries: --common-stack-seconds)" if "queries_timed" in timed else ""
    return f"{timed['p50_ms']} / {timed['p95_ms']}{capped}"


EXAMPLES = """examples:
  paperchat bench --sizes 1000,10000 --queries 200
  paperchat bench --sizes 1000 --with-100k --workdir /tmp/bench
  paperchat bench --sizes 10000 --with-100k --with-1m --common-stack-seconds 120
  paperchat bench --search-only ~/.local/share/paperchat/index"""


def _sizes(text: str) -> list[int]:
    """`--sizes 1000,10000` as numbers; anything else is argparse's one-line usage error."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of whole numbers, e.g. 1000,10000"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive whole numbers")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paperchat bench",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `paperchat bench` (also used by the `paperchat` command's own parser)."""
    parser.add_argument(
        "--sizes",
        default="1000,10000",
        type=_sizes,
        help="corpus sizes, comma-separated whole numbers (default 1000,10000)",
    )
    parser.add_argument(
        "--with-100k",
        action="store_true",
        help="add a 100,000-abstract corpus (vectors composed from sentence embeddings)",
    )
    parser.add_argument(
        "--with-1m",
        action="store_true",
        help="add a 1,000,000-abstract corpus (composed vectors; the common stack is not built for it)",
    )
    parser.add_argument(
        "--common-stack-max-size",
        type=int,
        default=100_000,
        help="largest corpus the common stack (rank_bm25 + Chroma + RRF) is built for (default 100000)",
    )
    parser.add_argument(
        "--common-stack-seconds",
        type=float,
        default=300.0,
        help="time the common stack's queries for at most this long per size (default 300)",
    )
    parser.add_argument(
        "--embed-limit",
        type=int,
        default=2000,
        help="sizes above this use composed vectors instead of embedding every abstract "
        "(default 2000: MiniLM embeds ~17 abstracts/s on 2 CPU cores)",
    )
    parser.add_argument("--queries", type=int, default=200, help="number of varied queries (default 200)")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="FILE",
        help="more corpus files whose sentences join the pool (default: the bundled corpus only)",
    )
    parser.add_argument("--workdir", help="where the benchmark indexes go (default: a temporary folder, removed after)")
    parser.add_argument(
        "--reuse-index",
        action="store_true",
        help="with --workdir: measure again an index a previous run ingested there (its ingest figures are kept) "
        "instead of ingesting it anew; a 1M ingest takes over an hour",
    )
    parser.add_argument("--out", default="bench-out", help="folder for bench.json (default bench-out)")
    parser.add_argument(
        "--hnsw-ef",
        default="200,400,1000",
        type=_sizes,
        help="HNSW ef_search values whose recall@100 and latency are measured at every size (search takes HNSW's "
        "candidates above the exact-scan limit; default 200,400,1000; the serving process measures the collection's "
        "own: 600, 1500 from 500,000 papers)",
    )
    parser.add_argument(
        "--recall-only",
        action="store_true",
        help="with --search-only: only the recall of Chroma's HNSW candidates against an exact scan",
    )
    parser.add_argument(
        "--exact-neighbours",
        metavar="FILE",
        help="with --search-only: keep the exact neighbours of the queries (the HNSW recall's reference) in FILE and "
        "reuse them while the collection is unchanged (the bench's own processes share one)",
    )
    parser.add_argument(
        "--common-stack",
        action="store_true",
        help="with --search-only: only time the common stack on that index (for --common-stack-seconds at most)",
    )
    parser.add_argument(
        "--search-only",
        metavar="INDEX",
        help="only time searching an existing index, in a fresh process (writes search-only.json)",
    )
    parser.add_argument(
        "--chroma-url",
        metavar="URL",
        help="with --search-only: the index's Chroma is the `chroma run` server at URL (INDEX holds the snapshot)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    alone = [
        option for option in ("chroma_url", "recall_only", "exact_neighbours", "common_stack") if getattr(args, option)
    ]
    if alone and not args.search_only:
        raise PaperchatError(f"--{alone[0].replace('_', '-')} only goes with --search-only INDEX")
    sizes = args.sizes + ([100_000] if args.with_100k else []) + ([1_000_000] if args.with_1m else [])
    pool = sentence_pool([Path(p) for p in args.extra])
    queries = make_queries(pool, args.queries)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.search_only:
        exact = Path(args.exact_neighbours) if args.exact_neighbours else None
        common_seconds = args.common_stack_seconds if args.common_stack else None
        result = search_only(Path(args.search_only), queries, args.recall_only, exact, args.chroma_url, common_seconds)
        (out / "search-only.json").write_text(
            json.dumps({"queries": len(queries), "repeats": REPEATS, **result}, indent=2)
        )
        if args.common_stack:
            print(f"common stack: {_common_stack_cell(result['common'])} ms")
            return 0
        print(f"HNSW: {result['hnsw']}")
        if args.recall_only:
            return 0
        for name in ("new_query", "filtered_1pct_query", "repeated_query", "query_embedding"):
            print(f"{name.replace('_', ' ')}: p50 {result[name]['p50_ms']} ms, p95 {result[name]['p95_ms']} ms")
        print(
            f"{result['documents']:,} documents; queries embedded by {result['query_backend']}; "
            f"RSS {result['rss_mb']} MB (anonymous {result['anonymous_mb']} MB); {len(queries)} queries, "
            f"median of {REPEATS} runs each"
        )
        return 0
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="paperchat-bench-"))
    results = []
    try:
        for size in sizes:
            print(f"== {size:,} abstracts", file=sys.stderr)
            results.append(
                bench_size(
                    size,
                    pool,
                    queries,
                    workdir,
                    composed=size > args.embed_limit,
                    common_stack_max_size=args.common_stack_max_size,
                    common_stack_seconds=args.common_stack_seconds,
                    hnsw_ef=args.hnsw_ef,
                    reuse_index=args.reuse_index,
                )
            )
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print_table(results)
    print(
        f"peak RSS of the whole run (ingest included): {peak:.0f} MB; "
        f"{len(queries)} queries, median of {REPEATS} runs each"
    )
    (out / "bench.json").write_text(
        json.dumps(
            {"queries": len(queries), "repeats": REPEATS, "peak_rss_mb": round(peak), "sizes": results}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
