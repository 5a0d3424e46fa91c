"""HNSW parameter study: recall@100 of Chroma's HNSW against an exact scan, on the bench's composed vectors, for
chosen `max_neighbors` x `ef_construction` (the graph, fixed at creation) and `ef_search` (read when a process loads
the graph). Bare Chroma collections of vectors only, so that a graph of 1M builds in about 25 minutes here, where
`paperchat bench` takes hours for the same papers with their documents and passages.

    python -m paperchat.eval.hnsw_study prepare --size 200000 --dir W
    python -m paperchat.eval.hnsw_study build --size 200000 --links 32 --construction 200 --dir W
    python -m paperchat.eval.hnsw_study recall --size 200000 --links 32 --construction 200 --ef 400 --dir W

`recall` prints one JSON line; run it once per `ef_search`, each in a fresh process."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paperchat.eval.bench import ComposedEmbedder, latency, make_queries, sentence_pool, synthetic_papers
from paperchat.index.bm25 import top_positions
from paperchat.index.chroma import HnswConfig
from paperchat.index.embeddings import Embedder
from paperchat.settings import Settings

QUERIES = 50
K = 100
ADD_BATCH = 5000


def prepare(size: int, folder: Path) -> None:
    """The composed vectors of the bench's first `size` synthetic papers, its query vectors, and their exact top K."""
    pool = sentence_pool([])
    embedder = ComposedEmbedder(pool)
    papers = synthetic_papers(pool, size)
    vectors = np.vstack(
        [embedder.encode([p.text for p in papers[i : i + ADD_BATCH]]) for i in range(0, size, ADD_BATCH)]
    )
    queries = np.vstack([embedder.encode_query(q) for q in make_queries(pool, QUERIES)]).astype(np.float32)
    similarities = vectors @ queries.T
    exact = [top_positions(similarities[:, c], K, positive_only=False).tolist() for c in range(len(queries))]
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"vectors-{size}.npy", vectors)
    np.save(folder / f"queries-{size}.npy", queries)
    (folder / f"exact-{size}.json").write_text(json.dumps(exact))


def _collection(folder: Path, size: int, links: int, construction: int, create: bool = False):
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(folder / f"chroma-{size}-{links}-{construction}"), settings=Settings(anonymized_telemetry=False)
    )
    if not create:
        return client.get_collection("papers")
    graph = HnswConfig(max_neighbors=links, ef_construction=construction)  # as paperchat makes its papers collection
    return client.create_collection("papers", configuration=graph.configuration())


def build(size: int, links: int, construction: int, folder: Path) -> dict:
    """A collection of the prepared vectors with this graph; the seconds its adds took."""
    vectors = np.load(folder / f"vectors-{size}.npy")
    collection = _collection(folder, size, links, construction, create=True)
    started = time.perf_counter()
    for start in range(0, size, ADD_BATCH):
        chunk = vectors[start : start + ADD_BATCH]
        collection.add(ids=[str(i) for i in range(start, start + len(chunk))], embeddings=chunk)
    collection.query(query_embeddings=[vectors[0]], n_results=1)
    return {
        "size": size,
        "links": links,
        "construction": construction,
        "build_s": round(time.perf_counter() - started, 3),
    }


def recall(size: int, links: int, construction: int, ef_search: int, folder: Path) -> dict:
    """Recall@K against the exact top K at `ef_search` (set, then loaded by this process's first query), and the
    HNSW query's latency beside that of the query embedding (ONNX Runtime, as search embeds a new query), timed in
    the same process: at the `ef_search` that reaches the recall target, the vector call alone is a share of the
    whole search's latency budget, which the issue states in embeddings (2x at 1M)."""
    collection = _collection(folder, size, links, construction)
    collection.modify(configuration={"hnsw": {"ef_search": ef_search}})
    queries = np.load(folder / f"queries-{size}.npy")
    exact = json.loads((folder / f"exact-{size}.json").read_text())

    def found(c: int) -> list[str]:
        return collection.query(query_embeddings=[queries[c]], n_results=K, include=[])["ids"][0]

    found(0)
    shares = [len(set(map(int, found(c))) & set(exact[c])) / K for c in range(len(queries))]
    embedder = Embedder(cache_dir=Settings.load().cache_dir)  # the ONNX copy of the model where paperchat keeps it
    texts = make_queries(sentence_pool([]), QUERIES)
    hnsw_query = latency(lambda c: found(int(c)), [str(c) for c in range(len(queries))])
    query_embedding = latency(embedder.encode_query, texts, embedder._cache.clear)
    return {
        "size": size,
        "links": links,
        "construction": construction,
        "ef_search": collection.configuration_json["hnsw"]["ef_search"],
        f"recall_at_{K}": round(float(np.mean(shares)), 4),
        "lowest": min(shares),
        "hnsw_query": hnsw_query,
        "query_embedding": query_embedding,
        "hnsw_per_embedding": round(hnsw_query["p50_ms"] / query_embedding["p50_ms"], 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paperchat.eval.hnsw_study", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("prepare", "build", "recall"))
    parser.add_argument("--size", type=int, required=True, help="papers (the bench's first N synthetic ones)")
    parser.add_argument("--links", type=int, default=16, help="max_neighbors (Chroma's default 16)")
    parser.add_argument("--construction", type=int, default=100, help="ef_construction (Chroma's default 100)")
    parser.add_argument("--ef", type=int, default=400, help="ef_search, for recall")
    parser.add_argument("--dir", type=Path, required=True, help="where vectors and collections are kept")
    args = parser.parse_args(argv)
    if args.step == "prepare":
        prepare(args.size, args.dir)
    elif args.step == "build":
        print(json.dumps(build(args.size, args.links, args.construction, args.dir)))
    else:
        print(json.dumps(recall(args.size, args.links, args.construction, args.ef, args.dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
