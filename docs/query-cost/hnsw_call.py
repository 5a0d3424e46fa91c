"""Chroma's HNSW call on an index folder's papers collection: ids only against ids and distances, and the same call
with a busy Python thread beside it (does Chroma release the GIL while it searches?).

    python docs/query-cost/hnsw_call.py W/index-100000/chroma
"""

import statistics
import sys
import threading
import time

import chromadb

from paperchat.eval.bench import make_queries, sentence_pool
from paperchat.index.embeddings import Embedder
from paperchat.settings import Settings

collection = chromadb.PersistentClient(sys.argv[1]).get_collection("papers")
embedder = Embedder(cache_dir=Settings.load().cache_dir)
vectors = [embedder.encode_query(q) for q in make_queries(sentence_pool([]), 200)]


def timed(include: list[str]) -> list[float]:
    times = []
    for vector in vectors:
        started = time.perf_counter()
        collection.query(query_embeddings=[vector], n_results=100, include=include)
        times.append((time.perf_counter() - started) * 1000)
    return times


timed([])  # warm-up: loads the graph
for _ in range(2):
    for include in ([], ["distances"]):
        print(f"include={include}: p50 {statistics.median(timed(include)):.2f} ms")
stop = threading.Event()
spins = 0


def spin() -> None:
    global spins
    while not stop.is_set():
        spins += 1


beside = threading.Thread(target=spin)
beside.start()
busy = statistics.median(timed([]))
stop.set()
beside.join()
print(f"with a busy Python thread beside it: p50 {busy:.2f} ms; the thread ran {spins:,} loops meanwhile")
