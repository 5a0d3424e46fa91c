"""How well a digest lists the new papers that answer saved questions: the blind topics as saved questions,
a slice of the bundled corpus held out of an index and then ingested as "new", and the digest's papers
scored against the graded judgments (any grade counts as an answer)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from paperchat.eval.datasets import half, load_bundled_set
from paperchat.index.loaders import load_bundled

HELD_OUT = 5  # one paper in five (by the MD5 of its id) arrives as "new"


def held_out(paper_id: str) -> bool:
    return int(hashlib.md5(paper_id.encode("utf-8")).hexdigest(), 16) % HELD_OUT == 0


def measure(folder: Path, which: str | None, progress: bool = False) -> dict:
    """Precision and recall (micro, over every saved question) of the digest after ingesting the held-out slice,
    in an index built under `folder` (the bundled corpus without the slice; built once, then reused)."""
    from paperchat.api import Assistant

    papers = load_bundled()[0]
    new = [p for p in papers if held_out(p.id)]
    index = folder / f"digest-{len(papers)}"
    fresh = not (index / "chroma").is_dir()
    assistant = Assistant.open(index, bootstrap=False, progress=progress, notify=lambda m: None)
    if fresh:
        assistant.store.ingest([p for p in papers if not held_out(p.id)], progress=progress)
    for path in (assistant.watchlist.path, assistant.watchlist.seen_path):
        path.unlink(missing_ok=True)
    dataset = load_bundled_set("blind_topics")
    dataset = half(dataset, which) if which else dataset
    for query in dataset.queries:
        assistant.watch(query.text)
    assistant.store.ingest(new, progress=progress)
    entries = assistant.digest(mark=False)
    new_ids = {p.id for p in new}
    listed = judged = right = 0
    per_question = []
    for query, entry in zip(dataset.queries, entries):
        answers = {doc for doc, grade in dataset.qrels[query.id].items() if grade > 0} & new_ids
        shown = {p.hit.id for p in entry.papers}
        listed, judged, right = listed + len(shown), judged + len(answers), right + len(shown & answers)
        per_question.append(
            {"question": query.text, "listed": len(shown), "judged": len(answers), "right": len(shown & answers)}
        )
    assistant.store.remove(sorted(new_ids))  # the index is reused: the slice is new again next time
    return {
        "questions": len(dataset.queries),
        "new_papers": len(new),
        "listed": listed,
        "judged": judged,
        "right": right,
        "precision": round(right / listed, 3) if listed else None,
        "recall": round(right / judged, 3) if judged else None,
        "per_question": per_question,
    }


def figures_text(table: dict) -> str:
    return (
        f"{table['questions']} saved questions, {table['new_papers']} new papers: {table['listed']} listed, "
        f"{table['right']} of them judged answers (precision {table['precision']}); {table['judged']} judged answers "
        f"among the new papers, {table['right']} listed (recall {table['recall']})"
    )
