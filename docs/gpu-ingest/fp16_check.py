"""Float16 document embeddings on a GPU, the two things they need checked:

1. quality: every text paperchat's ingest embedded for the bundled corpus, Cranfield and CISI (recorded on the CPU
   with float32, `check_texts.json`) embedded again in float16; the vectors come back to be evaluated by
   `paperchat eval` in place of the CPU's (`fp16-vectors-0.npy` and `-1.npy`, by `record_eval.py`);
2. speed: the tokenizer bounds GPU ingest (README, "GPU ingest"), so the texts of `gpu_embed.py` are embedded by
   1, 2, 4 and 8 processes sharing the GPU, each tokenising its own share (sentence-transformers' process pool).

    (device) python3 .devcarry/fp16_check.py                     # float16: both checks
    (device) python3 .devcarry/fp16_check.py float32 1,8,16      # float32, as paperchat embeds: speed only
"""

import json
import os
import sys
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

here = os.path.dirname(os.path.abspath(__file__))
out = os.environ.get("OUT", "/tmp")


def main() -> None:
    dtype = sys.argv[1] if len(sys.argv) > 1 else "float16"
    counts = [int(n) for n in (sys.argv[2] if len(sys.argv) > 2 else "1,2,4,8").split(",")]
    model = SentenceTransformer(os.path.join(here, "model"), device="cuda", model_kwargs={"dtype": torch.float32})
    if dtype == "float16":
        model = model.half()
        checked = json.load(open(os.path.join(here, "check_texts.json")))
        vectors = model.encode(checked, batch_size=256, convert_to_numpy=True, normalize_embeddings=True)
        halves = np.array_split(np.asarray(vectors, dtype=np.float16), 2)  # a file brought back holds 16 MiB at most
        for number, half in enumerate(halves):
            np.save(os.path.join(out, f"fp16-vectors-{number}.npy"), half)
        print(json.dumps({"checked_texts": len(checked)}), flush=True)
    corpus = json.load(open(os.path.join(here, "texts.json")))
    texts = (corpus["papers"] + corpus["passages"]) * 100
    result = {"dtype": dtype, "texts": len(texts), "papers": len(corpus["papers"]) * 100, "runs": []}
    result["cpu_count"] = os.cpu_count()
    reference = model.encode(texts[:4096], batch_size=1024, convert_to_numpy=True, normalize_embeddings=True)
    for processes in counts:
        pool = model.start_multi_process_pool(["cuda"] * processes) if processes > 1 else None
        chunk = -(-len(texts) // processes)
        model.encode(texts[:8192], batch_size=1024, pool=pool)  # warm-up
        started = time.perf_counter()
        vectors = model.encode(
            texts, batch_size=1024, pool=pool, chunk_size=chunk, convert_to_numpy=True, normalize_embeddings=True
        )
        seconds = time.perf_counter() - started
        if pool is not None:
            model.stop_multi_process_pool(pool)
        run = {"processes": processes, "seconds": round(seconds, 2), "texts_per_s": round(len(texts) / seconds)}
        run["papers_per_s"] = round(result["papers"] / seconds)
        run["max_difference_to_one_process"] = float(np.abs(vectors[:4096] - reference).max())
        result["runs"].append(run)
        print(json.dumps(run), flush=True)
    json.dump(result, open(os.path.join(out, f"{dtype}_pool.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
