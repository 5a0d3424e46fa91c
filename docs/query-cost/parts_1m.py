"""One-off: the bench's part rows (`paperchat.eval.bench.query_parts`, which its run reaches only after a 10-minute
snapshot rebuild at 1M) on a bench index, then where the whole search's time goes, by function (cProfile, new
queries). `parts_1m-output.txt` was written before the rows came from `query_parts`: its names are new_query,
repeated_query, query_embedding, vector_knn, bm25 and fusion_and_snippets, and it has no torch row.

    python docs/query-cost/parts_1m.py INDEX [QUERIES]
"""

import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

from paperchat import Assistant
from paperchat.eval.bench import make_queries, query_parts, sentence_pool

index = Path(sys.argv[1])
queries = make_queries(sentence_pool([]), int(sys.argv[2]) if len(sys.argv) > 2 else 100)
started = time.perf_counter()
searcher = Assistant.open(index, bootstrap=False, notify=lambda m: None)
searcher.store.snapshot()
print("open s", round(time.perf_counter() - started, 1), flush=True)
print(json.dumps(query_parts(searcher, queries)), flush=True)
clear = searcher.store.embedder._cache.clear
profile = cProfile.Profile()
for query in queries:
    clear()
    profile.enable()
    searcher.retrieve(query, k=10)
    profile.disable()
pstats.Stats(profile).sort_stats("tottime").print_stats(30)
pstats.Stats(profile).sort_stats("cumtime").print_stats(40)
