"""The store: the one writer of an index, and the keeper of its current derived snapshot.

An ingest plans against what Chroma holds (`index/plan.py`), embeds and writes batch by batch
(`index/chroma.py`), then adds one segment to the snapshot (`index/snapshot.py`): the papers it
wrote, read back from Chroma by id, with the rows they replace marked deleted; so its cost grows
with the papers ingested, not with the index. Writers and snapshot changes are serialised across
processes by a file lock beside the snapshot, so `paperchat chat` may serve while `paperchat
ingest` adds papers to the same index: the server keeps answering from its last snapshot and,
when Chroma's stamp moves, loads the new segments only. A snapshot that does not account for
Chroma's state (a writer died between its writes and its segment) is rebuilt in full, and says so.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from filelock import FileLock, Timeout

from paperchat.index.bm25 import BM25Params
from paperchat.index.chroma import ChromaRepository, HnswConfig
from paperchat.index.embeddings import Embedder
from paperchat.index.errors import PaperchatError
from paperchat.index.papers import Paper
from paperchat.index.passages import pack_passages, split_sentences
from paperchat.index.plan import paper_to_record, plan_ingest
from paperchat.index.snapshot import SEGMENT_ROWS, STALE, Segment, Snapshot, joined_lexicon, segments_to_merge
from paperchat.index.tokenize import CONTROL_CHARACTERS, Tokenizer

LOCK_FILE = "write.lock"
HOLDER_FILE = "write.lock.holder"  # the lock holder's pid and command, for the messages of those who wait


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    updated_metadata: int = 0
    unchanged: int = 0
    total: int = 0

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.updated_metadata} updated (metadata), "
            f"{self.unchanged} unchanged; {self.total} papers in the index"
        )


HOLD_AFTER_BATCH = "PAPERCHAT_TEST_HOLD_AFTER_BATCH"


def _hold_after(batch: int) -> None:
    """Crash tests' hook: with PAPERCHAT_TEST_HOLD_AFTER_BATCH=N the ingest says when write batch N is
    in Chroma, then waits to be killed, so a test kills it at a known point, not at a guessed one."""
    if os.environ.get(HOLD_AFTER_BATCH) == str(batch):
        print(f"paperchat: test hook: write batch {batch} is written; holding", file=sys.stderr, flush=True)
        time.sleep(3600)


class WriteLock:
    """One writer per index across processes (`filelock`), with a note beside the lock of who holds it.

    The holder writes its pid and command next to the lock and removes them when it lets go, so
    that a process finding the index locked says whom it waits for instead of hanging silently,
    and gives up after `timeout` seconds with an error that names the holder.
    """

    def __init__(self, folder: Path, timeout: float, where: str, notify: Callable[[str], None]) -> None:
        self._lock = FileLock(str(folder / LOCK_FILE))
        self._holder_file = folder / HOLDER_FILE
        self.timeout = timeout
        self.where = where
        self.notify = notify

    @contextlib.contextmanager
    def held(self, wait: bool = True) -> Iterator[bool]:
        """Hold the lock for the block (re-entrant in one thread). Without `wait`, yields False at
        once when another process holds it; with it, waits up to `timeout` seconds, saying so once."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                yield False
                return
            self._wait()
        try:
            if self._lock.lock_counter == 1:
                self._write_holder()
            yield True
        finally:
            if self._lock.lock_counter == 1:
                self._holder_file.unlink(missing_ok=True)
            self._lock.release()

    def _wait(self) -> None:
        holder = self.holder()
        waiting = f"waiting up to {self.timeout:g} s for it (lock_timeout)"
        self.notify(f"the index at {self.where} is being written by {holder}; {waiting}")
        try:
            self._lock.acquire(timeout=self.timeout)
        except Timeout:
            raise PaperchatError(
                f"the index at {self.where} is still being written by {self.holder()} after {self.timeout:g} s; "
                "try again once it is done, or wait longer with lock_timeout (PAPERCHAT_LOCK_TIMEOUT)"
            ) from None

    def _write_holder(self) -> None:
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else sys.executable
        try:
            self._holder_file.write_text(json.dumps({"pid": os.getpid(), "command": command}), encoding="utf-8")
        except OSError:
            pass  # the note only improves others' messages; the lock itself is what serialises writers

    def holder(self) -> str:
        """Who holds the lock, as the holder noted it: "pid 123 (paperchat ingest x.bib)", or "another process"."""
        try:
            note = json.loads(self._holder_file.read_text(encoding="utf-8"))
            pid, command = int(note["pid"]), str(note["command"])
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"
        if not psutil.pid_exists(pid):  # a note left by a holder that was killed; the lock died with it
            return "another process"
        return f"pid {pid} ({CONTROL_CHARACTERS.sub(' ', command)[:200]})"


class Store:
    """A Chroma repository, the embedder that fills it, and the snapshot derived from it.

    The knobs come from the caller (`Assistant.open` passes `Settings`), so that each default is
    written in one place.
    """

    def __init__(
        self,
        path: Path,
        embedder: Embedder,
        *,
        collection: str,
        chroma_url: str | None,
        engine: str,
        bm25: BM25Params,
        write_batch: int,
        lock_timeout: float,
        tokenizer: Tokenizer | None = None,
        notify: Callable[[str], None] | None = None,
        create: bool = True,
        hnsw: HnswConfig = HnswConfig(),
        segment_rows: int = SEGMENT_ROWS,
    ) -> None:
        self.path = Path(path).expanduser()
        self.embedder = embedder
        self.chroma_url = chroma_url
        self.engine = engine
        self.tokenizer = tokenizer or Tokenizer()
        self.bm25_params = bm25
        self.notify = notify or (lambda message: print(message, file=sys.stderr))
        self.write_batch = write_batch
        self.segment_rows = segment_rows
        self.repository = ChromaRepository(
            self.path, chroma_url, collection, embedder.name, lambda: self.embedder.dimension, create, hnsw
        )
        try:
            self.snapshot_folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PaperchatError(
                f"cannot write the derived snapshot under {self.path} ({exc.strerror or exc})"
            ) from None
        self._writer = WriteLock(self.snapshot_folder, lock_timeout, self.repository.where, self.notify)
        self._snapshot: Snapshot | None = None
        self._snapshot_fingerprint = ""
        self._snapshot_guard = threading.Lock()

    @property
    def snapshot_folder(self) -> Path:
        where = "local" if not self.chroma_url else urllib.parse.quote(self.chroma_url, safe="")
        return self.path / "snapshots" / where / self.repository.name

    # --- the snapshot search reads -----------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The current snapshot (in memory; no Chroma round trip); built or loaded on first use."""
        current = self._snapshot
        return current if current is not None else self.refresh()

    def refresh(self) -> Snapshot:
        """The snapshot matching Chroma now: kept, loaded if saved and intact, else rebuilt.

        While another process writes (it holds the lock), a store that already has a snapshot
        keeps it, consistent if a little old, and tries again at its next refresh.
        """
        with self._snapshot_guard:
            fingerprint = self.repository.fingerprint()
            if self._snapshot is not None and fingerprint == self._snapshot_fingerprint:
                return self._snapshot
            with self._writer.held(wait=self._snapshot is None) as holding:
                if holding:
                    self._install(self._load_or_build(self._current_fingerprint(), rebuild=False))
            return self._snapshot

    def _current_fingerprint(self) -> str:
        """Call with the lock held: Chroma's fingerprint, the store reopened first if another process wrote since our
        snapshot."""
        fingerprint = self.repository.fingerprint()
        if self._snapshot is not None and fingerprint != self._snapshot_fingerprint:
            self.repository.reopen()
            fingerprint = self.repository.fingerprint()
        return fingerprint

    def _install(self, built: tuple[Snapshot, str]) -> Snapshot:
        self._snapshot, self._snapshot_fingerprint = built
        return self._snapshot

    def _load_or_build(self, fingerprint: str, rebuild: bool) -> tuple[Snapshot, str]:
        """Call with the lock held: the saved snapshot for `fingerprint`; else the one held (or, in a process just
        started, the one saved at an earlier state) plus a segment of the writes Chroma's change log lists since; else
        a new one built from Chroma."""
        snapshot, why = (None, "") if rebuild else self._load_saved(fingerprint)
        if snapshot is None and not rebuild:
            before, at = self._snapshot, self._snapshot_fingerprint
            if before is None and why == STALE:  # a replica that was stopped while others wrote: its saved snapshot
                at = Snapshot.saved_fingerprint(self.snapshot_folder)
                before, _ = self._load_saved(at)
            changed = self.repository.changes_since(at, fingerprint) if before is not None else None
            if changed is not None:  # another replica's writes, from Chroma's change log: one segment of them
                return self._add_segment(before, *changed, fingerprint), fingerprint
        if snapshot is None:
            if why and why != "no derived snapshot yet":
                self.notify(f"{why}; rebuilding it in full from Chroma")
            snapshot = self._rebuilt()
            snapshot.save(self.snapshot_folder, fingerprint)
        return snapshot, fingerprint

    def _load_saved(self, fingerprint: str | None) -> tuple[Snapshot | None, str]:
        """The snapshot saved in this store's folder for `fingerprint` (`Snapshot.load`), or (None, why)."""
        return Snapshot.load(
            self.snapshot_folder, fingerprint, self.engine, self.tokenizer, self.bm25_params, self._snapshot
        )

    def _rebuilt(self) -> Snapshot:
        """Call with the lock held: a snapshot of everything Chroma holds, read and built `segment_rows` papers at a
        time, so that memory holds one segment's worth, never the index. The first segment's lexicon reuses the
        word vectors of the snapshot this one replaces; each later one holds only words the earlier ones lack."""
        from tqdm.auto import tqdm

        segments: list[Segment] = []
        count = self.repository.count()
        with tqdm(total=count, desc="deriving the snapshot", unit="paper", disable=count < self.segment_rows) as bar:
            for ids in self.repository.id_pages(self.segment_rows):
                segments.append(
                    Segment.build(
                        *self.repository.fetch(ids),
                        self.tokenizer,
                        encode=self.embedder.encode,  # the gate's lexicon: the abstracts' words, embedded here
                        previous=(
                            joined_lexicon([s.lexicon for s in segments], segments[0].vectors.shape[1])
                            if segments
                            else self._snapshot.lexicon
                            if self._snapshot
                            else None
                        ),
                        new_words_only=bool(segments),
                    )
                )
                bar.update(len(ids))
        if not segments:  # an empty index: one empty segment
            segments.append(Segment.build(*self.repository.fetch([]), self.tokenizer))
        unchanged = [np.zeros(0, dtype=np.int64)] * len(segments)
        return Snapshot(segments, unchanged, self.engine, self.tokenizer, self.bm25_params)

    # --- writes ------------------------------------------------------------------------

    def fill_new(self, load: Callable[[], list[Paper]], announce: str, progress: bool = True) -> IngestReport | None:
        """Ingest `load()` into an index nothing was ever ingested into (first use), else None.

        Decided under the write lock, so two processes opening a new index fill it once; and by
        the index's own mark of a first ingest, never by its count, so an index whose papers were
        all removed stays empty.
        """
        with self._writer.held():
            self._current_fingerprint()
            if self.repository.ingested() or self.repository.count():
                return None
            self.notify(announce)
            return self._ingest(load(), progress)

    def ingest(self, papers: list[Paper], progress: bool = True) -> IngestReport:
        """Add new papers, re-embed changed ones, update the metadata of re-sourced ones; then one new snapshot.

        Vectors are written batch by batch as they are embedded, so an interrupted ingest
        keeps what it finished and the next run only embeds the rest.
        """
        with self._writer.held():
            return self._ingest(papers, progress)

    def _ready(self) -> Snapshot:
        """Call with the lock held: the snapshot of Chroma as it is now (loaded or rebuilt if ours is older)."""
        fingerprint = self._current_fingerprint()
        if self._snapshot is None or fingerprint != self._snapshot_fingerprint:
            self._install(self._load_or_build(fingerprint, rebuild=False))
        return self._snapshot

    def _add_segment(self, before: Snapshot, written: list[str], removed: list[str], fingerprint: str) -> Snapshot:
        """Call with the lock held, after writes to Chroma that left it at `fingerprint`: `before` plus one segment
        of the papers `written` (read back from Chroma by id) with the rows of `written` and `removed` deleted,
        saved; then, when there are too many small segments, the smallest merged into one (`segments_to_merge`; the
        new papers are searchable before the merge starts)."""
        added = (
            Segment.build(
                *self.repository.fetch(written),
                self.tokenizer,
                encode=self.embedder.encode,  # the gate's lexicon: only the words no earlier segment has
                previous=before.lexicon,
                new_words_only=True,
            )
            if written
            else None
        )
        snapshot = before.with_changes(added, written + removed)
        snapshot.save(self.snapshot_folder, fingerprint)
        self._install((snapshot, fingerprint))
        chosen = segments_to_merge(snapshot.live_sizes(), self.segment_rows)
        if chosen:
            snapshot = snapshot.merged(chosen)
            snapshot.save(self.snapshot_folder, fingerprint)
            self._install((snapshot, fingerprint))
        return snapshot

    def _logged_segment(self, before: Snapshot, written: list[str], removed: list[str]) -> None:
        """Call with the lock held, after this process's writes to Chroma: log them in Chroma (for replicas with
        folders of their own), then add their segment here."""
        fingerprint = self.repository.fingerprint()
        self.repository.log_change(self._snapshot_fingerprint, fingerprint, written, removed)
        self._add_segment(before, written, removed, fingerprint)

    def _ingest(self, papers: list[Paper], progress: bool) -> IngestReport:
        """Call with the lock held: `ingest`'s work."""
        from tqdm.auto import tqdm

        self._ready()
        plan = plan_ingest(self.repository.existing_metadata(papers), papers)
        report = IngestReport(plan.added, plan.updated, plan.updated_metadata, plan.unchanged)
        if not (plan.embed or plan.metadata):
            self.repository.mark_ingested()
            report.total = self.repository.count()
            self._ready()  # marking a new index ingested creates its collection: a new fingerprint
            return report
        # The bar counts texts: abstracts, plus the passages of each write batch once it is split.
        bar = tqdm(
            total=len(plan.embed),
            desc="embedding abstracts + passages",
            unit="text",
            disable=not progress,
            file=sys.stderr,
        )
        batches = itertools.count(1)
        with bar:
            # One segment per `segment_rows` papers, each its own stamped, logged write: memory holds one
            # segment's papers, and an interruption keeps the segments done.
            for start in range(0, max(len(plan.embed), 1), self.segment_rows):
                part = plan.embed[start : start + self.segment_rows]
                updated = plan.metadata if start == 0 else []
                self.repository.stamp()
                for first in range(0, len(updated), self.write_batch):
                    batch = updated[first : first + self.write_batch]
                    self.repository.update_metadata([doc_id for doc_id, _ in batch], [m for _, m in batch])
                for first in range(0, len(part), self.write_batch):
                    batch = part[first : first + self.write_batch]
                    passages = self.passages(batch)
                    bar.total += sum(map(len, passages))
                    bar.refresh()
                    self._write_batch(batch, passages, bar.update)
                    _hold_after(next(batches))
                self.repository.stamp()
                self.repository.mark_ingested()
                self._logged_segment(self._snapshot, [p.id for p in part] + [doc_id for doc_id, _ in updated], [])
        report.total = self.repository.count()
        widened = self.repository.widen_search(report.total)
        if widened:
            self.notify(
                f"the index holds {report.total:,} papers: Chroma's HNSW search breadth (ef_search) goes from "
                f"{widened[0]} to {widened[1]}, which keeps recall@100 above 0.95 at this size; processes that open "
                "the index from now on search with it (a `chroma run` server, once restarted)"
            )
        return report

    def passages(self, papers: list[Paper]) -> list[list[str]]:
        """Each paper's passages (`pack_passages`), token counts from one tokenizer call."""
        sentences = [split_sentences(p.abstract) or [p.abstract] for p in papers]
        counts = iter(
            self.embedder.count_tokens([text for p, parts in zip(papers, sentences) for text in (p.title, *parts)])
        )
        return [
            pack_passages(p.title, parts, [next(counts) for _ in range(len(parts) + 1)], self.embedder.window)
            for p, parts in zip(papers, sentences)
        ]

    def _embed(self, texts: list[str], advance: Callable[[int], object]) -> np.ndarray:
        """Vectors of `texts`, longest first in chunks of a few model batches, so that the progress
        bar moves while batches stay as length-uniform as one big `encode` call would make them."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        chunk = self.embedder.batch_size * 4
        vectors = np.empty((len(texts), self.embedder.dimension), dtype=np.float32)
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            vectors[rows] = self.embedder.encode([texts[i] for i in rows])
            advance(len(rows))
        return vectors

    def _write_batch(self, batch: list[Paper], passages: list[list[str]], advance: Callable[[int], object]) -> None:
        records = [paper_to_record(p, len(parts)) for p, parts in zip(batch, passages)]
        flat = [(p.id, n, text) for p, parts in zip(batch, passages) for n, text in enumerate(parts)]
        vectors = self._embed([document for document, _ in records] + [text for _, _, text in flat], advance)
        self.repository.write(
            [p.id for p in batch],
            vectors[: len(batch)],
            [document for document, _ in records],
            [metadata for _, metadata in records],
            [(doc_id, n, vector) for (doc_id, n, _), vector in zip(flat, vectors[len(batch) :])],
        )

    def remove(self, ids: Iterable[str]) -> list[str]:
        """Delete papers from Chroma, then derive a new snapshot; returns the ids that were present."""
        with self._writer.held():
            before = self._ready()
            if self.repository.papers() is None:
                return []
            present = self.repository.present(list(dict.fromkeys(ids)))
            if present:
                self.repository.stamp()
                self.repository.delete(present)
                self.repository.stamp()
                self._logged_segment(before, [], present)
            return present
