"""BM25's top 100 by scoring every posting against MaxScore (`maxscore.diff` beside this file, applied to commit
db35d9a), on the bench's synthetic corpus: the postings of SIZE papers built once and repeated COPIES times as
segments. The two arms alternate query by query, three runs each.

    git apply docs/query-cost/maxscore.diff && python docs/query-cost/bm25_scale.py 100000 10
"""

import sys
import time

import numpy as np

from paperchat.eval.bench import make_queries, sentence_pool, synthetic_papers
from paperchat.index.bm25 import BM25Index, BM25Params, Postings, top_positions
from paperchat.index.tokenize import Tokenizer

size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
copies = int(sys.argv[2]) if len(sys.argv) > 2 else 1
tokenizer = Tokenizer()
pool = sentence_pool([])
postings = Postings.build(tokenizer.batch([p.title + "\n" + p.abstract for p in synthetic_papers(pool, size)]))
index = BM25Index([postings] * copies, "bm25s", tokenizer, BM25Params())
full_ms, maxscore_ms, mismatches = [], [], 0
for query in make_queries(pool, 200):
    terms = tokenizer.tokens(query)
    for _ in range(3):
        started = time.perf_counter()
        scores = index.scores(terms)
        top = top_positions(scores, 100)
        full_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        _, found = index.search(terms, 100)
        maxscore_ms.append((time.perf_counter() - started) * 1000)
    mismatches += not np.allclose(found, scores[top], atol=1e-5)
print(
    f"rows {len(index)}: every posting p50 {np.percentile(full_ms, 50):.2f} p95 {np.percentile(full_ms, 95):.2f} ms | "
    f"MaxScore p50 {np.percentile(maxscore_ms, 50):.2f} p95 {np.percentile(maxscore_ms, 95):.2f} ms | "
    f"queries whose top 100 differ: {mismatches}"
)
