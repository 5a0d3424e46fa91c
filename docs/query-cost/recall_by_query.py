"""One-off: HNSW recall@100 of each bench query against an exact scan of Chroma's own vectors, worst first, with the
exact 1st and 100th cosines and the lowest cosine HNSW returned (where HNSW lost its way, that one is far below the
exact 100th). The collection's ef_search is set beforehand with `set_ef.py`.

    python docs/query-cost/recall_by_query.py INDEX [QUERIES] [SHOWN]
"""

import sys
from pathlib import Path

import numpy as np

from paperchat import Assistant
from paperchat.eval.bench import make_queries, sentence_pool
from paperchat.index.bm25 import top_positions
from paperchat.index.chroma import READ_BATCH

queries = make_queries(sentence_pool([]), int(sys.argv[2]) if len(sys.argv) > 2 else 200)
store = Assistant.open(Path(sys.argv[1]), bootstrap=False, notify=lambda m: None).store
collection = store.repository.papers()
vectors = np.vstack([store.embedder.encode_query(q) for q in queries])
ids, pages = [], []
for offset in range(0, collection.count(), READ_BATCH):
    page = collection.get(include=["embeddings"], limit=READ_BATCH, offset=offset)
    ids += page["ids"]
    pages.append(np.asarray(page["embeddings"], dtype=np.float32))
similarities = np.concatenate(pages) @ vectors.T
del pages
found = []
for column, query in enumerate(queries):
    exact = top_positions(similarities[:, column], 100, positive_only=False)
    neighbours, cosines = store.repository.nearest(vectors[column], 100)
    recall = len({ids[i] for i in exact} & set(neighbours)) / 100
    first, last = similarities[exact[0], column], similarities[exact[-1], column]
    found.append((recall, query, round(float(first), 3), round(float(last), 3), round(float(cosines.min()), 3)))
found.sort()
mean = np.mean([f[0] for f in found])
print("ef_search", collection.configuration_json["hnsw"]["ef_search"], "mean recall@100", mean)
for row in found[: int(sys.argv[3]) if len(sys.argv) > 3 else 10]:
    print(row)
