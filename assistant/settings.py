"""`Settings`: every knob in one validated object; field `x` is read from env `PAPERCHAT_X`.

Values come from the defaults, then `PAPERCHAT_*` environment variables, then keywords; each
is checked (type, range, no NaN or infinity) whichever way it arrived, and a bad one is a
`PaperchatError` naming the variable or keyword. Fields marked `index` only matter when an
index is built or opened; a per-call override (`Assistant.retrieve(**overrides)`) may change
only the others.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from paperchat.chat import MIN_SUPPORTED
from paperchat.index.bm25 import ENGINES, BM25Params
from paperchat.index.chroma import (
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_EF_SEARCH_LARGE,
    HNSW_LARGE_FROM,
    HNSW_MAX_NEIGHBORS,
)
from paperchat.index.embeddings import DEFAULT_MODEL, QUERY_BACKENDS, default_cache_dir
from paperchat.index.errors import PaperchatError
from paperchat.index.snapshot import SEGMENT_ROWS

MODES = ("hybrid", "bm25", "vector")
FUSIONS = ("rrf", "convex")
ENV_PREFIX = "PAPERCHAT_"
INDEX_TIME = {"index": True}  # marks fields that only matter when an index is built or opened


def default_index_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("paperchat")) / "index"


class Settings(BaseSettings):
    """Configuration for an index and its retrieval."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True
    )

    index: Path = Field(default_factory=default_index_dir, description="index folder", json_schema_extra=INDEX_TIME)
    model: str = Field(
        DEFAULT_MODEL,
        min_length=1,
        description="sentence-transformers model name or folder",
        json_schema_extra=INDEX_TIME,
    )
    chroma_url: str | None = Field(
        None, description="a `chroma run` server instead of the embedded store", json_schema_extra=INDEX_TIME
    )
    collection: str = Field("papers", min_length=1, description="Chroma collection name", json_schema_extra=INDEX_TIME)
    device: str = Field("auto", description="torch device for embedding documents", json_schema_extra=INDEX_TIME)
    query_backend: Literal[QUERY_BACKENDS] = Field(
        "auto", description="auto: ONNX Runtime for queries when it matches torch", json_schema_extra=INDEX_TIME
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="where the ONNX copy of the model is kept",
        json_schema_extra=INDEX_TIME,
    )
    batch_size: int = Field(64, ge=1, le=4096, description="texts per model batch", json_schema_extra=INDEX_TIME)
    embed_processes: int = Field(
        1,
        ge=1,
        le=64,
        description="processes that tokenise and embed an ingest's documents, each with its own copy of the model: "
        "on a GPU the tokenizer on the CPU side is the bottleneck",
        json_schema_extra=INDEX_TIME,
    )
    write_batch: int = Field(
        1024, ge=1, le=100_000, description="papers per Chroma write", json_schema_extra=INDEX_TIME
    )
    segment_rows: int = Field(
        SEGMENT_ROWS,
        ge=1,
        le=10_000_000,
        description="most papers in one segment of the derived snapshot: an ingest or a rebuild holds this many in "
        "memory at a time; segments this full are never merged again",
        json_schema_extra=INDEX_TIME,
    )
    hnsw_ef_search: int | None = Field(
        None,
        ge=10,
        le=10_000,
        description=f"Chroma HNSW search breadth; unset, paperchat chooses it: {HNSW_EF_SEARCH}, raised to "
        f"{HNSW_EF_SEARCH_LARGE} by the ingest that takes the index past {HNSW_LARGE_FROM:,} papers. A larger value "
        "finds more true neighbours above 20k papers, a little slower",
        json_schema_extra=INDEX_TIME,
    )
    hnsw_max_neighbors: int = Field(
        HNSW_MAX_NEIGHBORS,
        ge=4,
        le=256,
        description="links per paper in Chroma's HNSW graph, fixed when the collection is created: more find more "
        "true neighbours in a large index, for a slower build and more memory",
        json_schema_extra=INDEX_TIME,
    )
    hnsw_ef_construction: int = Field(
        HNSW_EF_CONSTRUCTION,
        ge=10,
        le=10_000,
        description="Chroma HNSW build breadth, fixed when the collection is created: larger builds a better graph, "
        "slower",
        json_schema_extra=INDEX_TIME,
    )
    engine: Literal[ENGINES] = Field("bm25s", description="BM25 engine", json_schema_extra=INDEX_TIME)
    bm25_k1: float = Field(BM25Params.k1, ge=0, le=10, json_schema_extra=INDEX_TIME)
    bm25_b: float = Field(BM25Params.b, ge=0, le=1, json_schema_extra=INDEX_TIME)
    refresh_seconds: float = Field(
        30.0,
        ge=0,
        le=86_400,
        description="how often a running app checks Chroma for other writers' changes",
        json_schema_extra=INDEX_TIME,
    )
    lock_timeout: float = Field(
        600.0,
        ge=0,
        le=604_800,
        json_schema_extra=INDEX_TIME,
        description="seconds to wait for another process writing to the index before giving up",
    )
    mode: Literal[MODES] = "hybrid"
    fusion: Literal[FUSIONS] = "convex"
    rrf_k: float = Field(60.0, ge=0)
    bm25_weight: float = Field(0.5, ge=0)
    vector_weight: float = Field(0.5, ge=0)
    adaptive_weight: float = Field(1.0, ge=0)
    depth: int = Field(100, ge=1, le=10_000, description="candidates taken from each side")
    feedback_docs: int = Field(5, ge=0, le=100)
    feedback_terms: int = Field(10, ge=0, le=1000)
    feedback_vector: float = Field(1.0, ge=0)
    feedback_bm25: float = Field(0.3, ge=0)
    feedback_temperature: float = Field(2.0, gt=0)
    smoothing: float = Field(1.0, ge=0)
    smoothing_docs: int = Field(10, ge=0, le=1000)
    min_relevance: float = Field(
        0.6,
        ge=0,
        le=1,
        description="relevance gate: the probability (paperchat.gate) a question must reach to be answered",
    )
    min_supported: float = Field(
        MIN_SUPPORTED,
        ge=0,
        le=1,
        description="a written answer is shown when at least this share of its sentences is supported by the "
        "abstracts they cite; otherwise the extractive answer, the written one kept under 'withheld'",
    )
    llm_url: str | None = Field(
        None,
        description="an OpenAI-compatible endpoint (http://127.0.0.1:11434/v1 for Ollama) for written answers; "
        "unset: extractive answers, no network",
    )
    llm_model: str | None = Field(
        None, min_length=1, description="the model name the endpoint expects (default: the first it lists)"
    )
    llm_api_key: SecretStr | None = Field(
        None, description="sent as a Bearer token to llm_url only; read it from PAPERCHAT_LLM_API_KEY"
    )
    llm_timeout: float = Field(
        60.0, gt=0, le=3600, description="seconds to wait for the endpoint to send anything before falling back"
    )
    llm_deadline: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="seconds one written answer (or follow-up rewrite) may take in all, however the endpoint keeps the "
        "connection alive; past it, the extractive answer is shown",
    )
    llm_max_tokens: int = Field(400, ge=16, le=32_768, description="longest written answer, in tokens")
    llm_abstract_chars: int = Field(
        1500, ge=200, le=20_000, description="characters of each abstract put in the prompt"
    )

    @field_validator("collection")
    @classmethod
    def _chroma_name(cls, name: str) -> str:
        """A name Chroma takes, with room for the `-passages` and `-changes` collections made beside it."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,500}[A-Za-z0-9]", name):
            raise ValueError(
                "must be 3 to 502 letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
            )
        return name

    @field_validator("llm_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        url = url.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/?#]+(?:/[^\s]*)?", url):
            raise ValueError("must be an http:// or https:// url, such as http://127.0.0.1:11434/v1")
        return url

    @classmethod
    def load(cls, **overrides) -> Settings:
        """Defaults, then PAPERCHAT_* environment variables, then explicit (non-None) keywords."""
        unknown = set(overrides) - set(cls.model_fields)
        if unknown:
            raise PaperchatError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        try:
            settings = cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as exc:
            raise PaperchatError(_describe(exc, overrides)) from None
        return settings.model_copy(
            update={"index": settings.index.expanduser(), "cache_dir": settings.cache_dir.expanduser()}
        )

    @classmethod
    def index_fields(cls) -> set[str]:
        return {name for name, f in cls.model_fields.items() if (f.json_schema_extra or {}).get("index")}

    def for_retrieval(self, **changes) -> Settings:
        """These settings with retrieval fields changed for one call; index-time fields are refused."""
        refused = set(changes) & self.index_fields()
        if refused:
            raise PaperchatError(
                f"{', '.join(sorted(refused))} only apply when an index is opened; use Assistant.open(...) instead"
            )
        unknown = set(changes) - set(type(self).model_fields)
        if unknown:
            raise PaperchatError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        try:
            return self.model_validate({**self.model_dump(), **{k: v for k, v in changes.items() if v is not None}})
        except ValidationError as exc:
            raise PaperchatError(_describe(exc, changes)) from None


def _describe(error: ValidationError, keywords: dict) -> str:
    """One line per bad value, naming the keyword or the PAPERCHAT_* variable it came from."""
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "?"
        origin = "" if name in keywords else f" (from {ENV_PREFIX + name.upper()})"
        shown = (
            "(hidden)" if name.endswith("api_key") else repr(item.get("input"))
        )  # a secret never reaches an error message
        problems.append(f"{name}{origin} = {shown}: {item['msg'][0].lower()}{item['msg'][1:]}")
    return "invalid setting " + "; ".join(problems)
