"""Digest study: can any rule over what paperchat knows of a (saved question, new paper) pair list the new papers
with precision 0.8 at recall 0.7 (issue 24's target)? The digest's hand rule (`paperchat.watch.listed_hits`) is
compared with models fitted to the judgments themselves, cross-validated by question, over two feature sets: the
search's own evidence, and that plus what the model can say of the paper alone (its title's and opening
sentence's cosines with the question, the share of the question's concepts its words hold). If fitted models do
no better than the hand rule, the features are what limits the digest, not the rule.

    python -m paperchat.eval.digest_study [--index-root DIR]

Dev halves of STUDY_SETS only (their test halves stay unread); the index and the held-out slice are those of
`paperchat eval --digest` (`paperchat.eval.digest`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paperchat.eval.datasets import half, load_bundled_set
from paperchat.eval.digest import index_without_slice, slice_ingested
from paperchat.gate import coverage, key_concepts
from paperchat.index.passages import split_sentences
from paperchat.watch import DIGEST_DEPTH, DIGEST_NEAR_TOP, DIGEST_RANK

STUDY_SETS = ("topics", "blind_topics", "blind_topics_short", "blind_topics3")  # graded topics with dev halves
CANDIDATES = 60  # places of the whole-index ranking read per question: the rule lists from the first 18
TARGET_RECALL = 0.7
RANKS = ("rank", "vector_rank", "bm25_rank")  # read as log(1 + rank)
SEARCH_FEATURES = ("rank", "score_share", "vector", "bm25_share", "vector_rank", "bm25_rank", "question_relevance")
PAPER_FEATURES = ("title_cosine", "opening_cosine", "concept_share", "idf_share", "title_idf_share")
FEATURE_SETS = {"search": SEARCH_FEATURES, "search + paper": SEARCH_FEATURES + PAPER_FEATURES}


def pair_rows(assistant, new_ids: set[str], sets: Sequence[str] = STUDY_SETS) -> tuple[list[dict], int]:
    """One row per (dev question, new paper in the first CANDIDATES of a whole-index search, gate off): its features
    and whether the judges graded it an answer; and the number of judged answers among all new papers (recall's
    denominator)."""
    snapshot, embedder = assistant.store.snapshot(), assistant.store.embedder
    papers = {snapshot.ids[row]: snapshot.paper(row) for row in snapshot.positions(sorted(new_ids)).tolist()}
    ids = sorted(papers)
    titles = dict(zip(ids, embedder.encode([papers[i].title for i in ids])))
    openings = dict(zip(ids, embedder.encode([(split_sentences(papers[i].abstract) or [""])[0] for i in ids])))
    rows, judged, seen = [], 0, set()
    for name in sets:
        dataset = half(load_bundled_set(name), "dev")
        for query in dataset.queries:
            if query.text in seen:
                continue
            seen.add(query.text)
            answers = {doc for doc, grade in dataset.qrels[query.id].items() if grade > 0} & new_ids
            judged += len(answers)
            search = assistant.retrieve(query.text, CANDIDATES, gate=False, depth=DIGEST_DEPTH)
            ranking = search.hits
            vector = embedder.encode_query(query.text)
            concepts = key_concepts(query.text, snapshot.tokenizer)
            idf = snapshot.bm25.idf(sorted({t for c in concepts for t in c.terms}))
            top_score, top_bm25 = ranking[0].score, max(h.bm25 for h in ranking) or 1.0
            for hit in (h for h in ranking if h.id in new_ids):
                words = snapshot.tokenizer.term_set(f"{hit.title}. {hit.abstract}")
                title_words = snapshot.tokenizer.term_set(hit.title)
                rows.append(
                    {
                        "question": query.text,
                        "answer": hit.id in answers,
                        "rank": hit.rank,
                        "score_share": hit.score / top_score,
                        "vector": hit.vector,
                        "bm25_share": hit.bm25 / top_bm25,
                        "vector_rank": hit.vector_rank or 999,
                        "bm25_rank": hit.bm25_rank or 999,
                        "question_relevance": search.relevance,  # the gate judges whether or not it hides hits
                        "title_cosine": float(titles[hit.id] @ vector),
                        "opening_cosine": float(openings[hit.id] @ vector),
                        "concept_share": float(np.mean([any(t in words for t in c.terms) for c in concepts]))
                        if concepts
                        else 0.0,
                        "idf_share": coverage(idf, words),
                        "title_idf_share": coverage(idf, title_words),
                    }
                )
    return rows, judged


def feature_matrix(rows: list[dict], names: Sequence[str]) -> np.ndarray:
    return np.array([[np.log1p(min(r[n], 999)) if n in RANKS else float(r[n]) for n in names] for r in rows])


def cross_validated(rows: list[dict], names: Sequence[str], model: str, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each row's probability of being an answer from a `model` ("logistic" or "boosting") fitted on the other
    folds' questions (folds by question, so no question is scored by a model that saw it)."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    questions = sorted({r["question"] for r in rows})
    np.random.default_rng(seed).shuffle(questions)
    fold_of = {q: i % folds for i, q in enumerate(questions)}
    features, labels = feature_matrix(rows, names), np.array([r["answer"] for r in rows])
    fold = np.array([fold_of[r["question"]] for r in rows])
    probabilities = np.zeros(len(rows))
    for k in range(folds):
        fitted = (
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
            if model == "logistic"
            else GradientBoostingClassifier(n_estimators=150, max_depth=2, learning_rate=0.05, random_state=seed)
        ).fit(features[fold != k], labels[fold != k])
        probabilities[fold == k] = fitted.predict_proba(features[fold == k])[:, 1]
    return probabilities


def precision_recall(listed: np.ndarray, answers: np.ndarray, judged: int) -> tuple[float, float]:
    """Micro precision and recall of the rows `listed` (a boolean mask), `judged` answers in all."""
    right = int((listed & answers).sum())
    return (right / int(listed.sum()) if listed.any() else 0.0), (right / judged if judged else 0.0)


def best_precision(scores: np.ndarray, answers: np.ndarray, judged: int, recall: float = TARGET_RECALL) -> tuple:
    """The highest precision of any cut-off on `scores` whose recall is at least `recall`: (precision, recall, cut).
    The cut is chosen after seeing the judgments, so this is an upper bound on what a cut fixed in advance gives."""
    best = (0.0, 0.0, None)
    for cut in np.unique(scores):
        found = precision_recall(scores >= cut, answers, judged)
        if found[1] >= recall and found[0] > best[0]:
            best = (*found, float(cut))
    return best


def main(argv: Sequence[str] | None = None) -> int:
    from paperchat.eval.__main__ import default_index_root

    parser = argparse.ArgumentParser(prog="python -m paperchat.eval.digest_study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-root", metavar="DIR", help="where `paperchat eval --digest` keeps its index")
    args = parser.parse_args(argv)
    assistant, new = index_without_slice(Path(args.index_root) if args.index_root else default_index_root())
    with slice_ingested(assistant, new):
        rows, judged = pair_rows(assistant, {p.id for p in new})
    answers = np.array([r["answer"] for r in rows])
    rule = np.array([r["rank"] <= DIGEST_RANK and r["score_share"] >= DIGEST_NEAR_TOP for r in rows])
    print(f"{len({r['question'] for r in rows})} dev questions, {judged} judged answers among the new papers")
    precision, recall = precision_recall(rule, answers, judged)
    print(f"the digest's rule (gate off): precision {precision:.3f}, recall {recall:.3f}")
    for name, features in FEATURE_SETS.items():
        for model in ("logistic", "boosting"):
            precision, recall, _ = best_precision(cross_validated(rows, features, model), answers, judged)
            print(f"{model} on {name} features: best precision {precision:.3f} (recall {recall:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
