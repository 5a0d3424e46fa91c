"""The Chroma store: the one writer of the index, and the reader both search sides use.

Chroma (embedded `PersistentClient`, or `HttpClient` for a `chroma run` server) holds the
documents, metadata and vectors, and in a second collection the passage vectors of long
abstracts (`index/passages.py`); it is the source of truth. The BM25 index beside it is
derived from what Chroma holds: its fingerprint is the collection's id, count and a
`generation` stamp that every write changes *before* it starts, so an interrupted write
always leaves the BM25 index detectably stale and it is rebuilt from Chroma.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from index.embeddings import Embedder
from index.errors import PaperchatError
from index.lexical import BM25Params, LexicalIndex, top_positions
from index.passages import Passages, pack_passages, split_sentences
from index.papers import Paper
from index.tokenize import Tokenizer

log = logging.getLogger("paperchat")
SCHEMA = 1
WRITE_BATCH = 1024
READ_BATCH = 5000
EXACT_SEARCH_LIMIT = 20_000  # documents; an exact scan of 20k x 384 floats takes about 2 ms


def _pages(collection, include: list[str]) -> Iterator[dict]:
    """Everything a collection holds, READ_BATCH records per `get` (none for a missing collection)."""
    total = collection.count() if collection is not None else 0
    for offset in range(0, total, READ_BATCH):
        yield collection.get(include=include, limit=READ_BATCH, offset=offset)


def content_hash(paper: Paper) -> str:
    """Changes exactly when what is embedded and BM25-indexed (title and abstract) changes."""
    return hashlib.sha1(json.dumps([paper.title, paper.abstract]).encode("utf-8")).hexdigest()


def paper_to_record(paper: Paper, passages: int | None = None) -> tuple[str, dict]:
    """Chroma document and metadata for a paper (list fields as JSON: Chroma metadata is flat).

    `passages` is how many passage vectors the paper has in the passage collection; it is
    written with the paper, after its passages, so a paper without it is not fully embedded.
    """
    metadata = {
        "title": paper.title,
        "url": paper.url,
        "pages": json.dumps(paper.pages),
        "dates": json.dumps(paper.dates),
        "code_links": json.dumps(paper.code_links),
        "content_hash": content_hash(paper),
    }
    if passages is not None:
        metadata["passages"] = passages
    return paper.text, metadata


def record_to_paper(doc_id: str, document: str, metadata: dict) -> Paper:
    title = str(metadata.get("title", ""))
    abstract = document[len(title) + 1 :] if title and document.startswith(title + "\n") else document
    return Paper(
        id=doc_id,
        title=title,
        abstract=abstract,
        url=str(metadata.get("url", "")),
        pages=json.loads(metadata.get("pages") or "[]"),
        dates=json.loads(metadata.get("dates") or "[]"),
        code_links=json.loads(metadata.get("code_links") or "[]"),
    )


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    total: int = 0

    def summary(self) -> str:
        return f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged; {self.total} papers in the index"


def _connect(path: Path, chroma_url: str | None):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if not chroma_url:
        path.mkdir(parents=True, exist_ok=True)
        try:
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
        raise PaperchatError(f"cannot reach the Chroma server at {chroma_url} ({type(exc).__name__}); is `chroma run` up?") from None
    return client


class Store:
    """Chroma collection + derived BM25 index for one corpus."""

    def __init__(
        self,
        path: Path,
        embedder: Embedder,
        collection: str = "papers",
        chroma_url: str | None = None,
        engine: str = "bm25s",
        tokenizer: Tokenizer | None = None,
        bm25: BM25Params | None = None,
        notify: Callable[[str], None] | None = None,
        write_batch: int = WRITE_BATCH,
    ) -> None:
        self.path = Path(path).expanduser()
        self.embedder = embedder
        self.collection_name = collection
        self.chroma_url = chroma_url
        self.engine = engine
        self.tokenizer = tokenizer or Tokenizer()
        self.bm25_params = bm25 or BM25Params()
        self.notify = notify or (lambda message: print(message, file=sys.stderr))
        self.write_batch = write_batch
        self._client = _connect(self.path, chroma_url)
        self._collection = None
        self._passage_collection = None
        self._lexical: LexicalIndex | None = None
        self._lexical_fingerprint = ""
        self._write_lock = threading.Lock()
        self._lexical_lock = threading.Lock()

    # --- the collection ----------------------------------------------------------------

    @property
    def lexical_folder(self) -> Path:
        where = "local" if not self.chroma_url else urllib.parse.quote(self.chroma_url, safe="")
        return self.path / "bm25" / where / self.collection_name

    def _open(self, name: str, create: bool, metadata: Callable[[], dict] | None = None):
        """A Chroma collection by name (cosine space, our own vectors), or None when it does not exist and `create` is False."""
        try:
            return self._client.get_collection(name, embedding_function=None)
        except Exception:
            if not create:
                return None
            return self._client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}, metadata=metadata() if metadata else None
            )

    def collection(self, create: bool = False):
        """The papers collection, or None when it does not exist and `create` is False."""
        if self._collection is None:
            self._collection = self._open(self.collection_name, create, self._new_metadata)
            if self._collection is not None:
                self._check_model(self._collection.metadata or {})
        return self._collection

    @property
    def passage_collection_name(self) -> str:
        return f"{self.collection_name}-passages"

    def passage_collection(self, create: bool = False):
        """The passage vectors of long abstracts (ids `DOC::pN`, metadata `doc` and `n`), or None
        when it does not exist and `create` is False (an index built before passages existed)."""
        if self._passage_collection is None:
            self._passage_collection = self._open(self.passage_collection_name, create)
        return self._passage_collection

    def _new_metadata(self) -> dict:
        return {
            "paperchat_schema": SCHEMA,
            "model": self.embedder.name,
            "dimension": self.embedder.dimension,
            "generation": uuid.uuid4().hex,
        }

    def _check_model(self, metadata: dict) -> None:
        stored = metadata.get("model")
        if stored and stored != self.embedder.name:
            raise PaperchatError(
                f"the index at {self.path} was built with the model {stored!r} "
                f"({metadata.get('dimension')} dimensions), not {self.embedder.name!r}; "
                f"use --model {stored} or build a new index with --index DIR"
            )

    def metadata(self) -> dict:
        collection = self.collection()
        if collection is None:
            return {}
        # An HTTP client may hold another replica's older view: re-read from the server.
        return dict(self._client.get_collection(self.collection_name, embedding_function=None).metadata or {})

    def count(self) -> int:
        collection = self.collection()
        return collection.count() if collection is not None else 0

    def passage_count(self) -> int:
        collection = self.passage_collection()
        return collection.count() if collection is not None else 0

    def fingerprint(self) -> str:
        collection = self.collection()
        if collection is None:
            return "empty"
        return f"{collection.id}:{collection.count()}:{self.metadata().get('generation', '')}"

    def _bump_generation(self) -> None:
        collection = self.collection(create=True)
        metadata = self.metadata()
        metadata["generation"] = uuid.uuid4().hex
        collection.modify(metadata=metadata)

    # --- writing -----------------------------------------------------------------------

    def _existing_metadata(self) -> dict[str, dict]:
        existing: dict[str, dict] = {}
        for page in _pages(self.collection(), ["metadatas"]):
            for doc_id, metadata in zip(page["ids"], page["metadatas"]):
                existing[doc_id] = metadata or {}
        return existing

    def _refresh_metadata(self, papers: list[tuple[Paper, dict]]) -> None:
        """Same text, new sources or links: merge the page lists and update metadata without re-embedding."""
        ids, metadatas = [], []
        for paper, old in papers:
            merged = record_to_paper(paper.id, paper.text, old)
            merged.merge_source(paper)
            merged.url = paper.url or merged.url
            merged.code_links = paper.code_links or merged.code_links
            _, metadata = paper_to_record(merged, old.get("passages"))
            if metadata != old:
                ids.append(paper.id)
                metadatas.append(metadata)
        for start in range(0, len(ids), self.write_batch):
            self.collection().update(ids=ids[start : start + self.write_batch], metadatas=metadatas[start : start + self.write_batch])

    def ingest(self, papers: list[Paper], progress: bool = True) -> IngestReport:
        """Add new papers, update changed ones, skip unchanged ones; then rebuild BM25 once.

        Vectors are written batch by batch as they are embedded, so an interrupted ingest
        keeps what it finished and the next run only embeds the rest.
        """
        from tqdm.auto import tqdm

        with self._write_lock:
            existing = self._existing_metadata()
            report = IngestReport()
            todo: list[Paper] = []
            same_text: list[tuple[Paper, dict]] = []
            for paper in papers:
                old = existing.get(paper.id)
                known = old.get("content_hash") if old is not None else None
                if known == content_hash(paper) and "passages" in old:
                    report.unchanged += 1
                    same_text.append((paper, old))
                    continue
                todo.append(paper)
                if known is None:
                    report.added += 1
                else:
                    report.updated += 1
            collection = self.collection(create=True)
            self._refresh_metadata(same_text)
            if todo:
                self._bump_generation()
                # The bar counts texts: abstracts, plus the passages of each write batch once it is split.
                with tqdm(total=len(todo), desc="embedding abstracts + passages", unit="text", disable=not progress, file=sys.stderr) as bar:
                    for start in range(0, len(todo), self.write_batch):
                        batch = todo[start : start + self.write_batch]
                        passages = self.passages(batch)
                        bar.total += sum(map(len, passages))
                        bar.refresh()
                        self._write_batch(batch, passages, bar.update)
            report.total = collection.count()
            self.sync_lexical(rebuild=bool(todo))
            return report

    def passages(self, papers: list[Paper]) -> list[list[str]]:
        """Each paper's passages (`index.passages.pack_passages`), token counts from one tokenizer call."""
        sentences = [split_sentences(p.abstract) or [p.abstract] for p in papers]
        counts = iter(self.embedder.count_tokens([text for p, parts in zip(papers, sentences) for text in (p.title, *parts)]))
        return [pack_passages(p.title, parts, [next(counts) for _ in range(len(parts) + 1)], self.embedder.window) for p, parts in zip(papers, sentences)]

    def _embed(self, texts: list[str], advance: Callable[[int], object]) -> np.ndarray:
        """Vectors of `texts`, longest first in chunks of a few model batches, so that the progress
        bar moves while batches stay as length-uniform as one big `encode` call would make them."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        chunk = self.embedder.batch_size * 4
        vectors: np.ndarray | None = None
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            encoded = self.embedder.encode([texts[i] for i in rows])
            if vectors is None:
                vectors = np.empty((len(texts), encoded.shape[1]), dtype=np.float32)
            vectors[rows] = encoded
            advance(len(rows))
        return vectors if vectors is not None else np.zeros((0, 0), dtype=np.float32)

    def _write_batch(self, batch: list[Paper], passages: list[list[str]], advance: Callable[[int], object]) -> None:
        """Embed papers and their passages, then write the passages first and the papers last, so
        that a paper carrying its `passages` count always has them all in Chroma."""
        records = [paper_to_record(p, len(parts)) for p, parts in zip(batch, passages)]
        flat = [(p.id, n, text) for p, parts in zip(batch, passages) for n, text in enumerate(parts)]
        vectors = self._embed([document for document, _ in records] + [text for _, _, text in flat], advance)
        # Old passages go first, also those of a paper whose earlier write was interrupted.
        passages_collection = self.passage_collection(create=True)
        passages_collection.delete(where={"doc": {"$in": [p.id for p in batch]}})
        if flat:
            passages_collection.upsert(
                ids=[f"{doc_id}::p{n}" for doc_id, n, _ in flat],
                embeddings=vectors[len(batch) :],
                metadatas=[{"doc": doc_id, "n": n} for doc_id, n, _ in flat],
            )
        self.collection().upsert(
            ids=[p.id for p in batch],
            embeddings=vectors[: len(batch)],
            documents=[document for document, _ in records],
            metadatas=[metadata for _, metadata in records],
        )

    def remove(self, ids: Iterable[str]) -> list[str]:
        """Delete papers from Chroma and BM25 together; returns the ids that were present."""
        with self._write_lock:
            collection = self.collection()
            if collection is None:
                return []
            wanted = list(dict.fromkeys(ids))
            present = collection.get(ids=wanted, include=[])["ids"] if wanted else []
            if present:
                self._bump_generation()
                passages = self.passage_collection()
                if passages is not None:
                    passages.delete(where={"doc": {"$in": present}})
                collection.delete(ids=present)
                self.sync_lexical(rebuild=True)
            return present

    # --- reading -----------------------------------------------------------------------

    def all_documents(self) -> tuple[list[str], list[str], np.ndarray, list[dict]]:
        """Every id, document, vector and metadata Chroma holds, read in pages (what derived state is built from)."""
        ids: list[str] = []
        documents: list[str] = []
        vectors: list[np.ndarray] = []
        metadatas: list[dict] = []
        for page in _pages(self.collection(), ["documents", "embeddings", "metadatas"]):
            ids.extend(page["ids"])
            documents.extend(page["documents"])
            vectors.append(np.asarray(page["embeddings"], dtype=np.float32))
            metadatas.extend(metadata or {} for metadata in page["metadatas"])
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
        return ids, documents, matrix, metadatas

    def all_passages(self, doc_ids: list[str], dimension: int) -> Passages:
        """Every passage vector Chroma holds, grouped by the row of its document in `doc_ids`."""
        owners: list[str] = []
        numbers: list[int] = []
        vectors: list[np.ndarray] = []
        for page in _pages(self.passage_collection(), ["embeddings", "metadatas"]):
            owners.extend(str((m or {}).get("doc", "")) for m in page["metadatas"])
            numbers.extend(int((m or {}).get("n", 0)) for m in page["metadatas"])
            vectors.append(np.asarray(page["embeddings"], dtype=np.float32))
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
        return Passages.group(doc_ids, owners, numbers, matrix, dimension)

    def lexical(self) -> LexicalIndex:
        """The BM25 index in memory (no Chroma round trip); synchronised on first use."""
        index = self._lexical
        return index if index is not None else self.sync_lexical()

    def sync_lexical(self, rebuild: bool = False) -> LexicalIndex:
        """The BM25 index matching Chroma now: loaded if saved and intact, else rebuilt from Chroma."""
        with self._lexical_lock:
            fingerprint = self.fingerprint()
            if not rebuild and self._lexical is not None and self._lexical_fingerprint == fingerprint:
                return self._lexical
            index, why = (None, "rebuild requested") if rebuild else LexicalIndex.load(
                self.lexical_folder, fingerprint, self.engine, self.tokenizer, self.bm25_params
            )
            if index is None:
                if why not in ("rebuild requested", "no BM25 index yet"):
                    self.notify(f"{why}; rebuilding it from Chroma")
                ids, documents, vectors, metadatas = self.all_documents()
                passages = self.all_passages(ids, vectors.shape[1] if vectors.ndim == 2 else 0)
                index = LexicalIndex.build(ids, documents, self.engine, self.tokenizer, self.bm25_params, vectors, metadatas, passages)
                index.save(self.lexical_folder, fingerprint)
            self._lexical, self._lexical_fingerprint = index, fingerprint
            return index

    def nearest(self, vector: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
        """Ids and MaxP cosine similarities (`LexicalIndex.best_passage`) of the `k` nearest documents.

        Up to EXACT_SEARCH_LIMIT documents the local vector copies are scanned exactly: cheaper
        than a Chroma round trip there, and free of HNSW's approximation, which on the small
        benchmarks dropped true neighbours from the candidate pool. Larger collections take
        Chroma's HNSW neighbours by document vector and re-rank them with their passages.
        """
        collection = self.collection()
        if collection is None or k <= 0:
            return [], np.zeros(0, dtype=np.float32)
        lexical = self.lexical()
        k = min(k, len(lexical))
        if k == 0:
            return [], np.zeros(0, dtype=np.float32)
        if lexical.vectors is not None and len(lexical) <= EXACT_SEARCH_LIMIT:
            similarities = np.asarray(lexical.vectors) @ vector
            if lexical.passages is not None:
                similarities = lexical.passages.scan(vector, similarities)
            top = top_positions(similarities, k, positive_only=False)
            return [lexical.ids[i] for i in top], similarities[top].astype(np.float32)
        result = collection.query(query_embeddings=[vector], n_results=k, include=["distances"])
        ids = result["ids"][0]
        similarities = lexical.best_passage(vector, lexical.positions(ids), 1.0 - np.asarray(result["distances"][0], dtype=np.float32))
        order = np.argsort(-similarities, kind="stable")
        return [ids[i] for i in order], similarities[order]

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        """Stored vectors by id: from the local derived copy when it has them, else from Chroma."""
        lexical = self.lexical()
        rows = lexical.rows(ids) if lexical.vectors is not None else None
        if rows is not None:
            return dict(zip(ids, np.asarray(lexical.vectors[rows])))
        collection = self.collection()
        if collection is None or not ids:
            return {}
        result = collection.get(ids=ids, include=["embeddings"])
        return {doc_id: np.asarray(vector, dtype=np.float32) for doc_id, vector in zip(result["ids"], result["embeddings"])}

    def papers(self, ids: list[str]) -> dict[str, Paper]:
        """Papers by id: from the local derived copy when it has them all, else from Chroma."""
        lexical = self.lexical()
        rows = lexical.rows(ids) if lexical.records is not None else None
        if rows is not None:
            return {doc_id: record_to_paper(doc_id, *lexical.records.get(row)) for doc_id, row in zip(ids, rows)}
        collection = self.collection()
        if collection is None or not ids:
            return {}
        result = collection.get(ids=ids, include=["documents", "metadatas"])
        return {
            doc_id: record_to_paper(doc_id, document, metadata or {})
            for doc_id, document, metadata in zip(result["ids"], result["documents"], result["metadatas"])
        }
