"""Evaluation datasets: the bundled judged question sets, BEIR folders and TREC qrels files."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from paperchat.index.errors import PaperchatError
from paperchat.index.tokenize import fold

BUNDLED_SETS = (
    "questions",
    "topics",
    "chats",
    "blind_topics",
    "blind_topics_short",
    "blind_chats",
    "blind_chats2",
    "blind_backpoint",
    "blind_paraphrase",
    "blind_chats3",
    "blind_backpoint2",
)
GATE_SETS = ("offtopic", "blind_offtopic", "blind_offtopic2", "blind_offtopic3")
# Written after the test halves of the joined split were scored: each record's half is decided by its own
# (first) text alone, or by the group of a joined record with the same text; joining them would move 4 older
# records between halves.
SPLIT_ALONE_SETS = (
    "blind_chats3",
    "blind_backpoint2",
    "blind_offtopic3",
    "blind_aspects",
    "blind_aspects2",
    "blind_aspects3",
    "blind_aspects4",
    "blind_aspects5",
    "blind_topics3",
)
FILTER_SETS = ("blind_filters", "blind_filters2")
# written after the test halves were scored: measured whole, never split (joining the groups would move records)
HELD_OUT_FILTER_SETS = ("blind_filters3",)
CLAIM_SETS = ("claims", "claims2")
# which sentences of an abstract state each aspect (comparison tables)
ASPECT_SETS = ("blind_aspects", "blind_aspects2", "blind_aspects3", "blind_aspects4", "blind_aspects5")
# saved questions for the digest, graded like the topics (written after the digest's first test half was scored)
DIGEST_SETS = ("blind_topics", "blind_topics3")
# in a gate set; every other kind (near, far) has no answer in the corpus
ANSWERABLE_KINDS = ("control", "paraphrase")


@dataclass
class Query:
    id: str
    text: str
    history: list[str] = field(default_factory=list)
    kind: str = ""
    group: str = ""  # what decides its half (`split_group`); queries of one group are never split

    def __post_init__(self) -> None:
        self.group = self.group or split_group(self.id, [*self.history, self.text])


@dataclass
class Dataset:
    """Queries with relevance judgments (qrels: query id -> doc id -> grade) and the corpus they judge."""

    name: str
    queries: list[Query]
    qrels: dict[str, dict[str, int]]
    corpus: list[Path] = field(default_factory=list)  # empty: the bundled corpus


HALVES = ("dev", "test")


def in_dev_half(group: str) -> bool:
    """The fixed dev/test split: a query is in the dev half when the MD5 of its group (`split_group`) is even."""
    return int(hashlib.md5(group.encode("utf-8")).hexdigest(), 16) % 2 == 0


def normalised(text: str) -> str:
    """A query's text for grouping: lower-case, accents folded, words only ("Machine unlearning?" = "machine
    unlearning")."""
    return " ".join(re.findall(r"\w+", fold(text).lower()))


def _group_keys(record: dict) -> list[str]:
    """What joins a record to others: the source paper of a claim; else its normalised (first) text and, with two or
    more judged answers, that set of answers."""
    if "source" in record:
        return [f"paper:{record['source']}"]
    keys = [f"text:{normalised((record.get('turns') or [record['text']])[0])}"]
    answers = sorted(a["id"] for a in record.get("answers", []))
    return keys + (["answers:" + "|".join(answers)] if len(answers) >= 2 else [])


@lru_cache(maxsize=1)
def bundled_groups() -> dict[str, str]:
    """The split group of every bundled judged record, over all sets at once (ids are unique across them).

    Records are joined when they share a normalised query text (a chat by its first turn), the same
    set of two or more judged answers, or (claims) the source paper; a group is named by its smallest
    key. So "machine unlearning" as a topic and as a short topic land in the same half, and so do
    all claims about one paper. A record of a set split alone (SPLIT_ALONE_SETS) takes the group of the
    first joined group it shares a key with, else one of its own; it never joins two groups, so adding such a
    set moves no older record between halves.
    """
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(keys: list[str]) -> None:
        for key in keys[1:]:
            parent[max(root(keys[0]), root(key))] = min(root(keys[0]), root(key))

    members: dict[str, list[str]] = {}
    alone: dict[str, list[str]] = {}
    for name in dict.fromkeys((*BUNDLED_SETS, *GATE_SETS, *FILTER_SETS, *CLAIM_SETS, *ASPECT_SETS, *DIGEST_SETS)):
        for record in read_jsonl(bundled_file(name)):
            (alone if name in SPLIT_ALONE_SETS else members)[record["_id"]] = _group_keys(record)
    for keys in members.values():
        join(keys)
    groups = {record_id: root(keys[0]) for record_id, keys in members.items()}
    joined = {key: root(key) for key in list(parent)}
    anchored = {record_id: next((joined[k] for k in keys if k in joined), None) for record_id, keys in alone.items()}
    parent.clear()
    for record_id, keys in alone.items():
        join(keys + [f"~{anchored[record_id]}"] if anchored[record_id] else keys)  # "~" sorts after any key
    anchors = {root(f"~{anchor}"): anchor for anchor in dict.fromkeys(a for a in anchored.values() if a)}
    groups.update({record_id: anchors.get(root(keys[0]), root(keys[0])) for record_id, keys in alone.items()})
    return groups


def split_group(record_id: str, turns: Sequence[str] = ()) -> str:
    """The group deciding a record's half: its bundled group, else (a BEIR query) its normalised first turn."""
    return bundled_groups().get(record_id) or f"text:{normalised(turns[0] if turns else record_id)}"


def half(dataset: Dataset, which: str) -> Dataset:
    """The dev or test half of a dataset's queries (and their judgments), same corpus."""
    if which not in HALVES:
        raise PaperchatError(f"unknown half {which!r}; choose dev or test")
    keep = [q for q in dataset.queries if in_dev_half(q.group) == (which == "dev")]
    ids = {q.id for q in keep}
    return Dataset(
        f"{dataset.name}-{which}",
        keep,
        {qid: grades for qid, grades in dataset.qrels.items() if qid in ids},
        dataset.corpus,
    )


def bundled_file(name: str) -> Path:
    return Path(str(resources.files("paperchat.eval") / f"{name}.jsonl"))


def read_lines(path: Path) -> list[str]:
    """The lines of a text file, or a `PaperchatError` naming it."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PaperchatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise PaperchatError(f"{path}: not UTF-8 text") from None


def read_jsonl(path: Path) -> list[dict]:
    lines = read_lines(path)
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise PaperchatError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    return records


def load_bundled_set(name: str) -> Dataset:
    """A judged set (BUNDLED_SETS): `answers` list the judged papers (grade defaults to 1); chats have `turns`."""
    queries, qrels = [], {}
    for record in read_jsonl(bundled_file(name)):
        turns = record.get("turns") or [record["text"]]
        queries.append(Query(record["_id"], turns[-1], list(turns[:-1]), record.get("kind", "")))
        qrels[record["_id"]] = {a["id"]: int(a.get("grade", 1)) for a in record["answers"]}
    return Dataset(name, queries, qrels)


def load_gate_set(name: str) -> list[tuple[Query, bool]]:
    """Questions of a gate set, each with whether the corpus answers it (controls do; near and far misses do not)."""
    return [
        (Query(r["_id"], r["text"], [], r.get("kind", "")), r.get("kind") in ANSWERABLE_KINDS)
        for r in read_jsonl(bundled_file(name))
    ]


def read_trec_qrels(path: Path) -> dict[str, dict[str, int]]:
    """TREC qrels (`qid 0 docid grade`) or BEIR qrels TSV (`query-id corpus-id score`, with a header)."""
    qrels: dict[str, dict[str, int]] = {}
    for number, row in enumerate(read_lines(path), start=1):
        parts = row.split()
        if not parts or parts[0] in ("query-id", "qid"):
            continue
        if len(parts) == 4:
            qid, _, docid, grade = parts
        elif len(parts) == 3:
            qid, docid, grade = parts
        else:
            raise PaperchatError(f"{path}:{number}: expected 'qid 0 docid grade' or 'qid docid grade'")
        try:
            value = int(float(grade))
        except ValueError:
            raise PaperchatError(f"{path}:{number}: relevance grade {grade!r} is not a number") from None
        if value > 0:
            qrels.setdefault(qid, {})[docid] = value
    return qrels


def read_trec_run(path: Path) -> dict[str, dict[str, float]]:
    """A six-column TREC run: `qid Q0 docid rank score tag`."""
    run: dict[str, dict[str, float]] = {}
    for number, row in enumerate(read_lines(path), start=1):
        parts = row.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise PaperchatError(f"{path}:{number}: a TREC run line has six columns: qid Q0 docid rank score tag")
        try:
            score = float(parts[4])
        except ValueError:
            raise PaperchatError(f"{path}:{number}: score {parts[4]!r} is not a number") from None
        run.setdefault(parts[0], {})[parts[2]] = score
    return run


def load_beir(folder: Path, split: str = "test") -> Dataset:
    """A BEIR folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""
    folder = Path(folder)
    for needed in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / needed).is_file():
            raise PaperchatError(f"{folder}: not a BEIR folder (missing {needed})")
    qrels = read_trec_qrels(folder / "qrels" / f"{split}.tsv")
    queries = []
    for number, record in enumerate(read_jsonl(folder / "queries.jsonl"), start=1):
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str) or not text.strip() or "_id" not in record:
            raise PaperchatError(f"{folder / 'queries.jsonl'}: query {number} needs an '_id' and a 'text'")
        if str(record["_id"]) in qrels:
            queries.append(Query(str(record["_id"]), text))
    return Dataset(folder.name, queries, qrels, [folder / "corpus.jsonl"])


def write_trec_run(path: Path, run: dict[str, dict[str, float]], tag: str = "paperchat") -> None:
    with path.open("w", encoding="utf-8") as out:
        for qid, docs in run.items():
            for rank, (docid, score) in enumerate(sorted(docs.items(), key=lambda x: -x[1]), start=1):
                out.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
