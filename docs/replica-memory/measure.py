"""A fresh process's anonymous memory (what one more replica adds) after it loads the snapshot folder that
`build_snapshot.py` wrote and does 200 queries' worth of snapshot work: the rows of 100 ids (what Chroma's HNSW
answers with), BM25's top 100, the top papers and their terms read.

    python docs/replica-memory/measure.py FOLDER
"""

import sys
import time
from pathlib import Path

import numpy as np

from paperchat.eval.bench import anonymous_mb, make_queries, sentence_pool
from paperchat.index.bm25 import BM25Params, top_positions
from paperchat.index.snapshot import Snapshot
from paperchat.index.tokenize import Tokenizer

queries = make_queries(sentence_pool([]), 200)
rng = np.random.default_rng(1)
before = anonymous_mb()
started = time.perf_counter()
snapshot, why = Snapshot.load(Path(sys.argv[1]), "fp-1m", "bm25s", Tokenizer(), BM25Params())
assert why == "loaded", why
loaded = anonymous_mb()
opened = time.perf_counter() - started
times = []
for query in queries:
    started = time.perf_counter()
    rows = rng.integers(0, len(snapshot), 100)
    ids = [snapshot.ids[int(r)] for r in rows]  # what Chroma's HNSW answers with
    assert (snapshot.positions(ids) == rows).all()
    terms = snapshot.tokenizer.tokens(query)
    top = top_positions(snapshot.bm25.scores(terms), 100)
    for row in top[:10].tolist():
        snapshot.paper(row)
    for row in top[:5].tolist():
        snapshot.document_terms(row)
    snapshot.bm25.idf([t for row in top[:5].tolist() for t in snapshot.document_terms(row).terms.tolist()])
    times.append((time.perf_counter() - started) * 1000)
print(
    f"rows {len(snapshot)}: anonymous MB before {before}, after load {loaded} ({opened:.1f} s), "
    f"after 200 queries {anonymous_mb()}; query p50 {np.percentile(times, 50):.2f} ms"
)
