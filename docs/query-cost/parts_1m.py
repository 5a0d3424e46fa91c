"""One-off: the parts of a new query on a bench index (the bench's own part rows, which its run reaches only after a
10-minute snapshot rebuild at 1M), then where the whole search's time goes, by function (cProfile, new queries).

    python docs/query-cost/parts_1m.py INDEX [QUERIES]
"""

import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

from paperchat import Assistant
from paperchat.chat import Formulation
from paperchat.eval.bench import _fuse_and_snippets, latency, make_queries, sentence_pool

index = Path(sys.argv[1])
queries = make_queries(sentence_pool([]), int(sys.argv[2]) if len(sys.argv) > 2 else 100)
started = time.perf_counter()
searcher = Assistant.open(index, bootstrap=False, notify=lambda m: None)
store = searcher.store
snapshot = store.snapshot()
print("open s", round(time.perf_counter() - started, 1), flush=True)
clear = store.embedder._cache.clear
found = {"new_query": latency(lambda q: searcher.retrieve(q, k=10), queries, clear)}
found["repeated_query"] = latency(lambda q: searcher.retrieve(q, k=10), queries)
found["query_embedding"] = latency(store.embedder.encode_query, queries, clear)
vectors = {q: store.embedder.encode_query(q) for q in queries}
found["vector_knn"] = latency(lambda q: searcher.searcher.nearest(snapshot, vectors[q], 100), queries)
found["bm25"] = latency(lambda q: snapshot.bm25.search(snapshot.tokenizer.tokens(q), 100), queries)
sides = {
    q: searcher.searcher.score_sides(snapshot, [Formulation(q)], [(snapshot.tokenizer.tokens(q), 1.0)], 100)
    for q in queries
}
found["fusion_and_snippets"] = latency(lambda q: _fuse_and_snippets(searcher, sides[q], q), queries)
print(json.dumps(found), flush=True)
profile = cProfile.Profile()
for query in queries:
    clear()
    profile.enable()
    searcher.retrieve(query, k=10)
    profile.disable()
pstats.Stats(profile).sort_stats("tottime").print_stats(30)
pstats.Stats(profile).sort_stats("cumtime").print_stats(40)
