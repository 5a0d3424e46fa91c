"""The Chroma repository: the source of truth, embedded (`PersistentClient`) or served (`chroma run`).

Two collections: the papers (document = title and abstract, our own vectors, flat metadata)
and `<name>-passages` (the passage vectors of long abstracts, ids `DOC::pN`, metadata `doc`,
`n`). Everything else paperchat keeps is derived from these. The papers collection carries a
`generation` stamp that every write changes before it starts and again when it ends, so the
fingerprint (`id:count:generation`) moves with every write, metadata-only ones included.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperchat.index.errors import PaperchatError
from paperchat.index.papers import Paper, normalise_title, title_id
from paperchat.index.passages import Passages

READ_BATCH = 5000
INGESTED = "ingested"  # papers-collection metadata key: an ingest finished here once (no bundled corpus again)
MAX_LOGGED_IDS = 100_000  # a write changing more papers than this is not logged: replicas rebuild in full
CHANGES_KEPT = 256  # writes the change log remembers
# With 64 links and ef_search 600, recall@100 against an exact scan is 0.995 at 100k (2.2 ms a query) and 0.961 at
# 1M (2.8 ms); with the earlier 32 and 400, 0.992 (1.7 ms) and 0.885, and 32 links needed ef_search 1000 for 0.964 at
# 1M (5.1 ms). README, "The vector call at 1M against the query embedding".
HNSW_EF_SEARCH = 600
# From this many papers a collection whose ef_search paperchat chooses searches with HNSW_EF_SEARCH_LARGE. At 1M, on
# a graph built page by page, recall@100 of the bench's 200 queries is 0.931 / 0.966 / 0.979 at ef_search 1000 / 1500 /
# 2000 (HNSW call 5.5 / 6.9 / 9.2 ms; 0.917 at 600, 3.3 ms); at 100k 600 already gives 0.991 (README, fifteenth part).
HNSW_LARGE_FROM = 500_000
HNSW_EF_SEARCH_LARGE = 1500
HNSW_MAX_NEIGHBORS = 64  # links per vector (Chroma's default 16); the build takes about 10% longer than with 32
HNSW_EF_CONSTRUCTION = 200  # build breadth (Chroma's default 100)


def ef_search_for(papers: int, chosen: int | None, large_from: int = HNSW_LARGE_FROM) -> int:
    """The ef_search a papers collection of `papers` searches with: the user's `chosen` when there is one, else
    HNSW_EF_SEARCH, and HNSW_EF_SEARCH_LARGE from `large_from` papers on."""
    if chosen is not None:
        return chosen
    return HNSW_EF_SEARCH_LARGE if papers >= large_from else HNSW_EF_SEARCH


@dataclass(frozen=True)
class HnswConfig:
    """Chroma's HNSW settings for the papers collection, the one searched by vector. Chroma fixes them when the
    collection is created (an existing one keeps its own; `ef_search` alone can be changed later, with
    `collection.modify`). The passage collection is only read by id, so it keeps Chroma's cheaper defaults.

    `ef_search` None lets paperchat choose it by the collection's size (`ef_search_for`)."""

    ef_search: int | None = None
    max_neighbors: int = HNSW_MAX_NEIGHBORS
    ef_construction: int = HNSW_EF_CONSTRUCTION
    large_from: int = HNSW_LARGE_FROM

    def configuration(self) -> dict:
        return {
            "hnsw": {
                "space": "cosine",
                "ef_search": ef_search_for(0, self.ef_search, self.large_from),
                "max_neighbors": self.max_neighbors,
                "ef_construction": self.ef_construction,
            }
        }


def connect(path: Path, chroma_url: str | None, create: bool = True):
    """An embedded client on `path/chroma`, or an HTTP client for a `chroma run` server.

    Without `create`, a local folder that holds no index is an error rather than a new, empty index.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if not chroma_url:
        if not create and not (path / "chroma").is_dir():
            raise PaperchatError(
                f"there is no index at {path}; build one with `paperchat ingest --index {path}` (or check the path)"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path / "chroma"), settings=chroma_settings)
        except Exception as exc:
            raise PaperchatError(f"cannot open the index at {path} ({exc})") from None
    parsed = urllib.parse.urlparse(chroma_url if "://" in chroma_url else "http://" + chroma_url)
    if not parsed.hostname:
        raise PaperchatError(f"invalid Chroma URL {chroma_url!r}; expected http://HOST:PORT")
    try:
        client = chromadb.HttpClient(
            host=parsed.hostname,
            port=parsed.port or (443 if parsed.scheme == "https" else 8000),
            ssl=parsed.scheme == "https",
            settings=chroma_settings,
        )
        client.heartbeat()
    except Exception as exc:
        raise PaperchatError(
            f"cannot reach the Chroma server at {chroma_url} ({type(exc).__name__}); is `chroma run` up?"
        ) from None
    return client


_EMBEDDED: dict[Path, object] = {}  # folder -> the one embedded client this process keeps open on it
_EMBEDDED_LOCK = threading.Lock()


def embedded_client(path: Path, key: Path, create: bool = True, stale=None):
    """This process's one embedded client on `path` (`key`: the folder resolved, once, by the caller),
    shared by every repository of the folder.

    With `stale` (the client a repository found behind another process's writes, see
    `ChromaRepository.reopen`), that client is closed and a new one takes its place for every
    repository of the folder. One client per folder is what makes closing it stop Chroma's view
    of the files: a second client on the folder would keep the old view alive and be handed it back.
    """
    with _EMBEDDED_LOCK:
        client = _EMBEDDED.get(key)
        if client is not None and client is stale:
            del _EMBEDDED[key]
            client.close()
            client = None
        if client is None:
            client = _EMBEDDED[key] = connect(path, None, create)
        return client


@functools.cache
def _store_faults() -> tuple[type[BaseException], ...]:
    """What Chroma and its HTTP client raise when the store is unreachable or refuses a request."""
    import httpx
    from chromadb.errors import ChromaError

    return ChromaError, httpx.HTTPError, ConnectionError, TimeoutError


def _clear_faults(method):
    """A failure of the store becomes one clear `PaperchatError` naming the server or folder (never a traceback)."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except PaperchatError:
            raise
        except _store_faults() as exc:
            where = (
                f"the Chroma server at {self.chroma_url} is not answering"
                if self.chroma_url
                else f"the index at {self.path} failed"
            )
            raise PaperchatError(
                f"{where} ({type(exc).__name__}: {str(exc)[:200]}); try again once it is back"
            ) from None

    return guarded


class ChromaRepository:
    """Reads and writes of one corpus's two collections; no ranking, no derived state."""

    def __init__(
        self,
        path: Path,
        chroma_url: str | None,
        name: str,
        model: str,
        dimension: Callable[[], int],
        create: bool = True,
        hnsw: HnswConfig = HnswConfig(),
    ) -> None:
        self.path = path
        self.chroma_url = chroma_url
        self.hnsw = hnsw
        self.name = name
        self.model = model
        self._dimension = dimension  # asked only when needed: it may mean loading the model
        self.where = chroma_url or str(path)  # for messages
        self._folder = None if chroma_url else Path(path).resolve()  # the key of the folder's shared client
        self._client = connect(path, chroma_url, create) if chroma_url else embedded_client(path, self._folder, create)
        self._papers = None
        self._passages = None

    @property
    def client(self):
        """The Chroma client; for an embedded store, the folder's current one (see `_follow`)."""
        self._follow()
        return self._client

    def _follow(self) -> None:
        """Take up the folder's current client when another repository in this process reopened it:
        the collections opened through the closed one are opened again."""
        if not self.chroma_url:
            current = embedded_client(self.path, self._folder)
            if current is not self._client:
                self._client, self._papers, self._passages = current, None, None

    def reopen(self) -> None:
        """Open an embedded store afresh after another process wrote to it.

        Embedded Chroma keeps a per-process view of its files (one `System` per folder): it sees
        another process's counts and metadata, but reading the new records through the old view
        fails. Closing the folder's client (Chroma's public `close`) stops that view, its threads
        and its memory with it, and the next client reads the files as they are now. A server
        needs none of this.
        """
        if self.chroma_url:
            return
        self._client = embedded_client(self.path, self._folder, stale=self._client)
        self._papers = self._passages = None

    @property
    def passages_name(self) -> str:
        return f"{self.name}-passages"

    @property
    def changes_name(self) -> str:
        return f"{self.name}-changes"

    def _open(self, name: str, create: bool, metadata: dict | None = None, configuration: dict | None = None):
        """A collection by name, or None when it does not exist and `create` is False (made with `configuration`,
        else with cosine space and Chroma's other defaults).

        Only "does not exist" means empty: any other failure is raised, so that a corpus is
        never written into a collection paperchat could not read.
        """
        from chromadb.errors import NotFoundError

        try:
            return self.client.get_collection(name, embedding_function=None)
        except NotFoundError:
            if not create:
                return None
        except Exception as exc:
            raise PaperchatError(
                f"cannot read the Chroma collection {name!r} at {self.where} ({type(exc).__name__}: {exc})"
            ) from None
        return self.client.get_or_create_collection(
            name,
            embedding_function=None,
            configuration=configuration or {"hnsw": {"space": "cosine"}},
            metadata=metadata,
        )

    @_clear_faults
    def papers(self, create: bool = False):
        """The papers collection, or None when it does not exist and `create` is False."""
        self._follow()
        if self._papers is None:
            self._papers = self._open(
                self.name,
                create,
                {"model": self.model, "dimension": self._dimension(), "generation": uuid.uuid4().hex}
                if create
                else None,
                self.hnsw.configuration(),
            )
            if self._papers is not None:
                self._check_model(self._papers.metadata or {})
        return self._papers

    @_clear_faults
    def passages(self, create: bool = False):
        """The passage collection, or None when it does not exist and `create` is False."""
        self._follow()
        if self._passages is None:
            self._passages = self._open(self.passages_name, create)
        return self._passages

    def _check_model(self, metadata: dict) -> None:
        stored = metadata.get("model")
        if stored and stored != self.model:
            raise PaperchatError(
                f"the index at {self.where} was built with the model {stored!r} "
                f"({metadata.get('dimension')} dimensions), "
                f"not {self.model!r}; use --model {stored} or build a new index with --index DIR"
            )

    # --- state ---------------------------------------------------------------------------

    @_clear_faults
    def metadata(self) -> dict:
        """The papers collection's metadata, read afresh (a server may hold another replica's writes)."""
        if self.papers() is None:
            return {}
        return dict(self.client.get_collection(self.name, embedding_function=None).metadata or {})

    @_clear_faults
    def count(self) -> int:
        collection = self.papers()
        return collection.count() if collection is not None else 0

    @_clear_faults
    def fingerprint(self) -> str:
        collection = self.papers()
        if collection is None:
            return "empty"
        return f"{collection.id}:{collection.count()}:{self.metadata().get('generation', '')}"

    @_clear_faults
    def ingested(self) -> bool:
        """Whether an ingest ever finished into this index; removing every paper later does not undo it."""
        return bool(self.metadata().get(INGESTED))

    @_clear_faults
    def mark_ingested(self) -> None:
        """Mark the index as ingested into (see `ingested`)."""
        collection = self.papers(create=True)
        metadata = self.metadata()
        if not metadata.get(INGESTED):
            collection.modify(metadata={**metadata, INGESTED: True})

    @_clear_faults
    def stamp(self) -> None:
        """Change the generation stamp: derived state built before now is stale."""
        collection = self.papers(create=True)
        metadata = self.metadata()
        metadata["generation"] = uuid.uuid4().hex
        collection.modify(metadata=metadata)

    # --- reads ---------------------------------------------------------------------------

    @_clear_faults
    def existing_metadata(self, papers: Sequence[Paper] | None = None) -> dict[str, dict]:
        """Metadata by id of the stored papers an ingest of `papers` can meet (what its plan is decided from): those
        with one of their ids or title ids, arXiv ids, DOIs, normalised or exact titles (`identity_keys`), looked up
        by those keys, so that the cost grows with the papers, not with the index. Every stored paper without
        `papers`."""
        collection = self.papers()
        if papers is None:
            return {
                doc_id: metadata or {}
                for page in _pages(collection, ["metadatas"])
                for doc_id, metadata in zip(page["ids"], page["metadatas"])
            }
        found: dict[str, dict] = {}
        if collection is None or not papers:
            return found
        ids = [p.id for p in papers] + [title_id(p.title) for p in papers if p.title]
        asked = [("arxiv_id", [p.arxiv_id for p in papers]), ("doi", [p.doi for p in papers])]
        asked += [("title_key", [normalise_title(p.title) for p in papers]), ("title", [p.title for p in papers])]
        lookups = [{"ids": chunk} for chunk in _chunks(ids)]
        lookups += [{"where": {name: {"$in": chunk}}} for name, values in asked for chunk in _chunks(values)]
        for lookup in lookups:
            result = collection.get(**lookup, include=["metadatas"])
            found.update((doc_id, metadata or {}) for doc_id, metadata in zip(result["ids"], result["metadatas"]))
        return found

    @_clear_faults
    def id_pages(self, size: int) -> list[list[str]]:
        """Every paper id Chroma holds, in lists of `size` (ids only: a million take ~70 MB)."""
        ids = [doc_id for read in _pages(self.papers(), []) for doc_id in read["ids"]]
        return [ids[start : start + size] for start in range(0, len(ids), size)]

    @_clear_faults
    def fetch(self, ids: list[str]) -> tuple[list[str], list[str], np.ndarray, list[dict], Passages]:
        """The ids, documents, vectors, metadata and passage vectors Chroma holds for the papers `ids` (those it has):
        one segment's rows."""
        papers, passages = self.papers(), self.passages()
        chunks = _chunks(ids, READ_BATCH)
        return self._read(
            (papers.get(ids=chunk, include=["documents", "embeddings", "metadatas"]) for chunk in chunks),
            (
                passages.get(where={"doc": {"$in": chunk}}, include=["embeddings", "metadatas"])
                for chunk in (chunks if passages is not None else [])
            ),
        )

    def _read(
        self, paper_pages: Iterable[dict], passage_pages: Iterable[dict]
    ) -> tuple[list[str], list[str], np.ndarray, list[dict], Passages]:
        ids: list[str] = []
        documents: list[str] = []
        vectors: list[np.ndarray] = []
        metadatas: list[dict] = []
        for page in paper_pages:
            ids.extend(page["ids"])
            documents.extend(page["documents"])
            vectors.append(np.asarray(page["embeddings"], dtype=np.float32))
            metadatas.extend(metadata or {} for metadata in page["metadatas"])
        dimension = vectors[0].shape[1] if vectors and vectors[0].ndim == 2 else self._dimension()
        vectors = [v for v in vectors if v.ndim == 2 and len(v)]
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, dimension), dtype=np.float32)
        owners: list[str] = []
        numbers: list[int] = []
        passage_vectors: list[np.ndarray] = []
        for page in passage_pages:
            owners.extend(str((m or {}).get("doc", "")) for m in page["metadatas"])
            numbers.extend(int((m or {}).get("n", 0)) for m in page["metadatas"])
            if len(page["ids"]):
                passage_vectors.append(np.asarray(page["embeddings"], dtype=np.float32))
        passage_matrix = (
            np.concatenate(passage_vectors) if passage_vectors else np.zeros((0, dimension), dtype=np.float32)
        )
        return ids, documents, matrix, metadatas, Passages.group(ids, owners, numbers, passage_matrix, dimension)

    @_clear_faults
    def log_change(self, before: str, after: str, written: list[str], removed: list[str]) -> None:
        """Record which papers a write changed, keyed by the fingerprint it left, so that a replica whose snapshot
        derives from `before` adds one segment instead of rebuilding (`changes_since`). A change too large to log
        is not: replicas then rebuild in full. The log keeps the last CHANGES_KEPT writes."""
        if len(written) + len(removed) > MAX_LOGGED_IDS:
            return
        log = self._open(self.changes_name, create=True)
        change = {"from": before, "written": written, "removed": removed}
        log.upsert(ids=[after], embeddings=[[1.0]], documents=[json.dumps(change)], metadatas=[{"at": time.time()}])
        if log.count() > CHANGES_KEPT:
            entries = log.get(include=["metadatas"])
            by_age = sorted(zip(entries["ids"], entries["metadatas"]), key=lambda entry: (entry[1] or {}).get("at", 0))
            log.delete(ids=[doc_id for doc_id, _ in by_age[: len(by_age) - CHANGES_KEPT]])

    @_clear_faults
    def changes_since(self, before: str, now: str) -> tuple[list[str], list[str]] | None:
        """The papers written and removed since the state `before` up to `now`, from the change log; None when the
        log cannot account for every write in between (a writer that died, a change too large to log)."""
        log = self._open(self.changes_name, create=False)
        if log is None:
            return None
        entries = log.get(include=["documents"])
        steps = {}
        for after, document in zip(entries["ids"], entries["documents"]):
            change = json.loads(document)
            steps[change["from"]] = (after, change)
        state: dict[str, bool] = {}  # id -> written (True) or removed (False), the later write winning
        at = before
        while at != now:
            if at not in steps or len(state) > MAX_LOGGED_IDS:
                return None
            at, change = steps.pop(at)
            state.update({doc_id: True for doc_id in change["written"]})
            state.update({doc_id: False for doc_id in change["removed"]})
        return [d for d, kept in state.items() if kept], [d for d, kept in state.items() if not kept]

    @_clear_faults
    def widen_search(self, papers: int) -> tuple[int, int] | None:
        """Raise the papers collection's ef_search to what `ef_search_for` gives for `papers`, when paperchat chooses
        it (never lowered): (before, after) when raised, else None. Chroma reads ef_search when a process loads the
        graph, so processes that open the index from now on search with it; a `chroma run` server once restarted."""
        before = self.search_breadth()
        if self.hnsw.ef_search is not None or before is None:
            return None
        after = ef_search_for(papers, None, self.hnsw.large_from)
        if after <= before:
            return None
        self.papers().modify(configuration={"hnsw": {"ef_search": after}})
        return before, after

    @_clear_faults
    def search_breadth(self) -> int | None:
        """The papers collection's HNSW ef_search (None before the collection exists)."""
        collection = self.papers()
        return None if collection is None else int(collection.configuration_json["hnsw"]["ef_search"])

    @_clear_faults
    def nearest(self, vector: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
        """Chroma's approximate (HNSW) nearest papers by document vector, with cosine similarities."""
        collection = self.papers()
        if collection is None or k <= 0:
            return [], np.zeros(0, dtype=np.float32)
        result = collection.query(query_embeddings=[vector], n_results=k, include=["distances"])
        return result["ids"][0], 1.0 - np.asarray(result["distances"][0], dtype=np.float32)

    # --- writes --------------------------------------------------------------------------

    @_clear_faults
    def write(
        self,
        ids: list[str],
        vectors: np.ndarray,
        documents: list[str],
        metadatas: list[dict],
        passages: list[tuple[str, int, np.ndarray]],
    ) -> None:
        """Replace the papers' passages, then write the papers: a paper carrying its `passages`
        count in its metadata always has them all in Chroma. Old passages of every paper go
        first, also those left by an interrupted earlier write."""
        collection = self.passages(create=True)
        collection.delete(where={"doc": {"$in": ids}})
        if passages:
            collection.upsert(
                ids=[f"{doc_id}::p{n}" for doc_id, n, _ in passages],
                embeddings=np.stack([vector for _, _, vector in passages]),
                metadatas=[{"doc": doc_id, "n": n} for doc_id, n, _ in passages],
            )
        self.papers(create=True).upsert(ids=ids, embeddings=vectors, documents=documents, metadatas=metadatas)

    @_clear_faults
    def update_metadata(self, ids: list[str], metadatas: list[dict]) -> None:
        self.papers().update(ids=ids, metadatas=metadatas)

    @_clear_faults
    def present(self, ids: list[str]) -> list[str]:
        """Which of `ids` Chroma holds, in the order asked."""
        collection = self.papers()
        found = set(collection.get(ids=ids, include=[])["ids"]) if collection is not None and ids else set()
        return [doc_id for doc_id in ids if doc_id in found]

    @_clear_faults
    def delete(self, ids: list[str]) -> None:
        """Delete papers and their passages."""
        passages = self.passages()
        if passages is not None:
            passages.delete(where={"doc": {"$in": ids}})
        self.papers().delete(ids=ids)


def _chunks(values: Sequence[str], size: int = 1000) -> list[list[str]]:
    """The distinct non-empty `values` in lists of at most `size` (what one Chroma lookup takes)."""
    distinct = [v for v in dict.fromkeys(values) if v]
    return [distinct[start : start + size] for start in range(0, len(distinct), size)]


def _pages(collection, include: list[str]) -> Iterator[dict]:
    """Everything a collection holds, READ_BATCH records per `get` (none for a missing collection)."""
    total = collection.count() if collection is not None else 0
    for offset in range(0, total, READ_BATCH):
        yield collection.get(include=include, limit=READ_BATCH, offset=offset)
