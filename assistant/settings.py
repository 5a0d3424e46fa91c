"""`Settings`: every knob in one typed object, each overridable by a PAPERCHAT_* variable."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from index.embeddings import DEFAULT_MODEL, QUERY_BACKENDS, default_cache_dir
from index.errors import PaperchatError
from index.lexical import ENGINES

MODES = ("hybrid", "bm25", "vector")
FUSIONS = ("rrf", "convex")
ENV_PREFIX = "PAPERCHAT_"


def default_index_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("paperchat")) / "index"


@dataclass
class Settings:
    """Configuration for an index and its retrieval. Field `x` is read from env `PAPERCHAT_X`."""

    index: Path = field(default_factory=default_index_dir)
    model: str = DEFAULT_MODEL
    chroma_url: str | None = None
    collection: str = "papers"
    device: str = "auto"
    query_backend: str = "auto"
    cache_dir: Path = field(default_factory=default_cache_dir)
    batch_size: int = 64
    write_batch: int = 1024
    engine: str = "bm25s"
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    mode: str = "hybrid"
    fusion: str = "convex"
    rrf_k: float = 60.0
    bm25_weight: float = 0.5
    vector_weight: float = 0.5
    adaptive_weight: float = 1.0
    depth: int = 100
    feedback_docs: int = 5
    feedback_terms: int = 10
    feedback_vector: float = 1.0
    feedback_bm25: float = 0.3
    feedback_temperature: float = 2.0
    smoothing: float = 1.0
    smoothing_docs: int = 10
    min_relevance: float = 0.5
    refresh_seconds: float = 30.0

    @classmethod
    def load(cls, **overrides) -> Settings:
        """Defaults, then PAPERCHAT_* environment variables, then explicit (non-None) overrides."""
        values: dict = {}
        for f in fields(cls):
            raw = os.environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _coerce(f, raw, ENV_PREFIX + f.name.upper())
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise PaperchatError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.index = Path(settings.index).expanduser()
        settings.cache_dir = Path(settings.cache_dir).expanduser()
        settings.validate()
        return settings

    def replace(self, **changes) -> Settings:
        updated = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        updated.validate()
        return updated

    def validate(self) -> None:
        _choice("mode", self.mode, MODES)
        _choice("fusion", self.fusion, FUSIONS)
        _choice("engine", self.engine, ENGINES)
        _choice("query_backend", self.query_backend, QUERY_BACKENDS)
        if not 1 <= self.depth <= 10000:
            raise PaperchatError(f"depth must be between 1 and 10000, got {self.depth}")
        for name in ("rrf_k", "bm25_weight", "vector_weight", "adaptive_weight", "feedback_docs", "feedback_terms",
                     "feedback_vector", "feedback_bm25", "smoothing", "smoothing_docs"):
            if getattr(self, name) < 0:
                raise PaperchatError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.feedback_temperature <= 0:
            raise PaperchatError(f"feedback_temperature must be positive, got {self.feedback_temperature}")
        if self.batch_size < 1 or self.write_batch < 1:
            raise PaperchatError(f"batch_size and write_batch must be at least 1, got {self.batch_size} and {self.write_batch}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise PaperchatError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def _coerce(f: dataclasses.Field, raw: str, variable: str):
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith("bool"):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError
            return raw.lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise PaperchatError(f"{variable}={raw!r} is not a valid {kind}") from None
    return raw
