"""How well a digest lists the new papers that answer saved questions: graded topics (DIGEST_SETS) as saved questions,
a slice of the bundled corpus held out of an index and then ingested as "new", and the digest's papers
scored against the graded judgments (any grade counts as an answer)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from paperchat.eval.datasets import DIGEST_SETS, half, load_bundled_set
from paperchat.index.loaders import load_bundled

if TYPE_CHECKING:
    from paperchat.api import Assistant
    from paperchat.index.papers import Paper

HELD_OUT = 5  # one paper in five (by the MD5 of its id) arrives as "new"


def held_out(paper_id: str) -> bool:
    return int(hashlib.md5(paper_id.encode("utf-8")).hexdigest(), 16) % HELD_OUT == 0


def index_without_slice(folder: Path, progress: bool = False) -> tuple[Assistant, list[Paper]]:
    """The index under `folder` of the bundled corpus without the held-out slice (built on first use, then reused),
    and the slice's papers."""
    from paperchat.api import Assistant

    papers = load_bundled()[0]
    new = [p for p in papers if held_out(p.id)]
    index = folder / f"digest-{len(papers)}"
    fresh = not (index / "chroma").is_dir()
    assistant = Assistant.open(index, bootstrap=False, progress=progress, notify=lambda m: None)
    if fresh:
        assistant.store.ingest([p for p in papers if not held_out(p.id)], progress=progress)
    else:  # a run killed while the slice was in leaves it there: it must be new again
        assistant.store.remove(sorted(p.id for p in new))
    return assistant, new


@contextmanager
def slice_ingested(assistant: Assistant, new: list[Paper], progress: bool = False) -> Iterator[None]:
    """The held-out slice ingested for the length of the block, then removed again, however the block ends: the
    index is reused, and the slice must be new to the next run."""
    try:
        assistant.store.ingest(new, progress=progress)
        yield
    finally:
        assistant.store.remove(sorted(p.id for p in new))


def measure(folder: Path, which: str | None, progress: bool = False) -> dict:
    """Precision and recall (micro, over every saved question of each of DIGEST_SETS, and over all) of the digest after
    ingesting the held-out slice, in an index built under `folder` (the bundled corpus without the slice; built once,
    then reused)."""
    assistant, new = index_without_slice(folder, progress)
    for path in (assistant.watchlist.path, assistant.watchlist.seen_path):
        path.unlink(missing_ok=True)
    datasets = [load_bundled_set(name) for name in DIGEST_SETS]
    datasets = [half(dataset, which) for dataset in datasets] if which else datasets
    saved = {}  # question text -> position among the saved questions (a text two sets share is saved once)
    for dataset in datasets:
        for query in dataset.queries:
            if query.text not in saved:
                saved[query.text] = len(saved)
                assistant.watch(query.text)
    with slice_ingested(assistant, new, progress):
        entries = assistant.digest(mark=False)
    new_ids = {p.id for p in new}
    tables = {}
    for dataset in datasets:
        per_question = []
        for query in dataset.queries:
            answers = {doc for doc, grade in dataset.qrels[query.id].items() if grade > 0} & new_ids
            shown = {p.hit.id for p in entries[saved[query.text]].papers}
            per_question.append(
                {"question": query.text, "listed": len(shown), "judged": len(answers), "right": len(shown & answers)}
            )
        tables[dataset.name] = _shares(per_question, len(new))
    tables["all"] = _shares([q for table in tables.values() for q in table["per_question"]], len(new))
    return tables


def _shares(per_question: list[dict], new_papers: int) -> dict:
    listed, judged, right = (sum(q[key] for q in per_question) for key in ("listed", "judged", "right"))
    return {
        "questions": len(per_question),
        "new_papers": new_papers,
        "listed": listed,
        "judged": judged,
        "right": right,
        "precision": round(right / listed, 3) if listed else None,
        "recall": round(right / judged, 3) if judged else None,
        "per_question": per_question,
    }


def figures_text(tables: dict) -> str:
    return "\n".join(
        f"{name}: {t['questions']} saved questions, {t['new_papers']} new papers: {t['listed']} listed, "
        f"{t['right']} of them judged answers (precision {t['precision']}); {t['judged']} judged answers among the "
        f"new papers, {t['right']} listed (recall {t['recall']})"
        for name, t in tables.items()
    )
