"""A 1M-row snapshot of the bench's synthetic papers without Chroma (10 segments of 100k, random unit vectors, no
passages, no lexicon; about 5 minutes and 3.6 GB), saved with the ids and BM25 terms both as arrays and as the JSON
lists that commits before 32af6cd read, so that either version of the code loads the same folder:

    python docs/replica-memory/build_snapshot.py FOLDER
    python docs/replica-memory/measure.py FOLDER    # in a checkout of each version
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from paperchat.eval.bench import sentence_pool, synthetic_papers
from paperchat.index.bm25 import BM25Params
from paperchat.index.passages import Passages
from paperchat.index.snapshot import MANIFEST, Segment, Snapshot, file_digest
from paperchat.index.tokenize import Tokenizer

root = Path(sys.argv[1])
segments = int(sys.argv[2]) if len(sys.argv) > 2 else 10
tokenizer, pool, rng = Tokenizer(), sentence_pool([]), np.random.default_rng(0)
built = []
for n in range(segments):
    started = time.perf_counter()
    papers = synthetic_papers(pool, 100_000, start=n * 100_000)
    ids = [p.id for p in papers]
    vectors = rng.normal(size=(len(ids), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metadatas = [{"title": p.title, "date": p.date} for p in papers]
    passages = Passages.group(ids, [], [], np.zeros((0, 384), dtype=np.float32), 384)
    texts = [p.title + "\n" + p.abstract for p in papers]
    built.append(Segment.build(ids, texts, vectors, metadatas, passages, tokenizer))
    print("segment", n, round(time.perf_counter() - started, 1), "s", flush=True)
snapshot = Snapshot(built, [np.zeros(0, dtype=np.int64)] * len(built), "bm25s", tokenizer, BM25Params())
snapshot.save(root, "fp-1m")
manifest = json.loads((root / MANIFEST).read_text())
for entry, segment in zip(manifest["segments"], built):
    for name, strings in (("ids.json", segment.ids), ("bm25-vocabulary.json", segment.postings.terms)):
        (root / entry["name"] / name).write_text(json.dumps(list(strings)))
        entry["files"][name] = file_digest(root / entry["name"] / name)
(root / MANIFEST).write_text(json.dumps(manifest, indent=1))
print("saved", len(snapshot))
