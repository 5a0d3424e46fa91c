"""Tokenizer throughput with TOKENIZERS_PARALLELISM as the environment sets it, and fp16 encode at batch 1024."""

import json
import os
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

here = os.path.dirname(os.path.abspath(__file__))
corpus = json.load(open(os.path.join(here, "texts.json")))
texts = (corpus["papers"] + corpus["passages"]) * 100
model = SentenceTransformer(os.path.join(here, "model"), device="cuda", model_kwargs={"dtype": torch.float16})
started = time.perf_counter()
for i in range(0, len(texts), 1024):
    model.preprocess(texts[i : i + 1024])
tok = len(texts) / (time.perf_counter() - started)
row = {"parallelism": os.environ.get("TOKENIZERS_PARALLELISM"), "tokenize_texts_per_s": round(tok)}
if len(sys.argv) > 1:
    model.encode(texts[:2048], batch_size=1024)
    torch.cuda.synchronize()
    started = time.perf_counter()
    model.encode(texts, batch_size=1024, convert_to_numpy=True, normalize_embeddings=True)
    row["fp16_1024_texts_per_s"] = round(len(texts) / (time.perf_counter() - started))
print(json.dumps(row), flush=True)
