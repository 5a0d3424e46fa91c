"""Ingest-embedding throughput on a GPU: the texts paperchat embeds for the bundled corpus (each abstract and its
passages), repeated, through sentence-transformers as `Embedder.encode` calls it; batch sizes and fp32/fp16."""

import json
import os
import sys
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

here = os.path.dirname(os.path.abspath(__file__))
copies = int(sys.argv[1]) if len(sys.argv) > 1 else 100
batches = [int(b) for b in (sys.argv[2] if len(sys.argv) > 2 else "64,256,1024").split(",")]
out = os.environ.get("OUT", "/tmp")
corpus = json.load(open(os.path.join(here, "texts.json")))
limit = int(os.environ.get("LIMIT", 10**9))  # a smoke test on CPU
corpus = {key: values[:limit] for key, values in corpus.items()}
unique = corpus["papers"] + corpus["passages"]
texts = unique * copies
papers = len(corpus["papers"]) * copies
device = "cuda" if torch.cuda.is_available() else "cpu"
result = {
    "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
    "cpu_count": os.cpu_count(),
    "papers": papers,
    "texts": len(texts),
    "torch": torch.__version__,
    "runs": [],
}
model = SentenceTransformer(os.path.join(here, "model"), device=device, model_kwargs={"dtype": torch.float32})


def encode(batch):
    return model.encode(
        texts, batch_size=batch, show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=True
    )


reference = None
for dtype in ("fp32", "fp16"):
    if dtype == "fp16":
        model = model.half()
    model.encode(unique[:512], batch_size=64, normalize_embeddings=True)  # warm-up
    for batch in batches:
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        vectors = encode(batch)
        seconds = time.perf_counter() - started
        run = {"dtype": dtype, "batch": batch, "seconds": round(seconds, 2), "papers_per_s": round(papers / seconds)}
        run["texts_per_s"] = round(len(texts) / seconds)
        first = np.asarray(vectors[: len(unique)], dtype=np.float32)
        if reference is None:
            reference = first
        cosines = np.sum(first * reference, axis=1)
        run["min_cosine_to_fp32"] = float(cosines.min())
        run["mean_cosine_to_fp32"] = float(cosines.mean())
        result["runs"].append(run)
        print(json.dumps(run), flush=True)
started = time.perf_counter()
for i in range(0, len(texts), 1024):
    getattr(model, "preprocess", model.tokenize)(texts[i : i + 1024])
result["tokenize_only_texts_per_s"] = round(len(texts) / (time.perf_counter() - started))
print(json.dumps(result), flush=True)
json.dump(result, open(os.path.join(out, "gpu_embed.json"), "w"), indent=1)
