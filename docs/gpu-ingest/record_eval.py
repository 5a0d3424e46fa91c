"""`paperchat eval` with the document embeddings recorded or replaced, for the float16 check of `fp16_check.py`.

    RECORD=R python docs/gpu-ingest/record_eval.py EVAL-ARGS...
        runs the evaluation as it is (float32 on this CPU) and writes every text the ingests embedded (documents,
        passages and the lexicon's words) to R.json;
    VECTORS=V TEXTS=R.json python docs/gpu-ingest/record_eval.py EVAL-ARGS...
        runs it with each of those texts embedded as the vectors in V (comma-separated .npy files, rows in the order
        of R.json: the device's float16 vectors) instead of by this CPU. Queries embed here as always.

EVAL-ARGS are `paperchat eval`'s; give each run its own `--index-root`, since the index holds the vectors.
"""

import json
import os
import sys

import numpy as np

from paperchat.eval.__main__ import main
from paperchat.index import embeddings

computed = embeddings.Embedder.encode
recorded: dict[str, None] = {}


def recording(self, texts):
    recorded.update(dict.fromkeys(texts))
    return computed(self, texts)


def replaying(lookup):
    def encode(self, texts):
        return np.vstack([lookup[text] for text in texts]).astype(np.float32)

    return encode


if os.environ.get("VECTORS"):
    texts = json.load(open(os.environ["TEXTS"], encoding="utf-8"))
    vectors = np.vstack([np.load(path) for path in os.environ["VECTORS"].split(",")])
    embeddings.Embedder.encode = replaying(dict(zip(texts, vectors)))
else:
    embeddings.Embedder.encode = recording
code = main(sys.argv[1:])
if os.environ.get("RECORD"):
    json.dump(list(recorded), open(os.environ["RECORD"] + ".json", "w", encoding="utf-8"))
sys.exit(code)
