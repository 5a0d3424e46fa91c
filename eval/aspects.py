"""How well comparison tables quote the right sentences, against blind judgments of which sentences of an abstract
state its problem, approach, data, result and code (`blind_aspects*.jsonl`: three sets of 80 bundled abstracts,
each written by a helper who read only the abstracts). Two shares, per aspect and in all: of the cells that quote
a sentence, those quoting a marked one; of the cells left "not stated", those the judge also left empty."""

from __future__ import annotations

from paperchat.compare import DEFAULT_ASPECTS, compare_row
from paperchat.eval.datasets import bundled_file, in_dev_half, read_jsonl, split_group
from paperchat.index.papers import Paper


def load_aspects(name: str, which: str | None = None) -> list[dict]:
    """The judged records of set `name` (`source`: the paper id; `aspects`: aspect -> marked sentence indices), one
    half or all."""
    records = read_jsonl(bundled_file(name))
    return [r for r in records if which is None or in_dev_half(split_group(r["_id"])) == (which == "dev")]


def figures(papers: dict[str, Paper], records: list[dict]) -> dict:
    """Per aspect and in all: quoted (cells quoting a sentence), quoted_right (a marked one), empty (cells left not
    stated), empty_right (the judge marked none), and the two shares."""
    counts = {aspect: {"quoted": 0, "quoted_right": 0, "empty": 0, "empty_right": 0} for aspect in DEFAULT_ASPECTS}
    for record in records:
        paper = papers[record["source"]]
        for cell in compare_row(paper.id, paper.title, paper.abstract).cells:
            marked, count = record["aspects"][cell.aspect], counts[cell.aspect]
            if cell.stated:
                count["quoted"] += 1
                count["quoted_right"] += cell.sentence in marked
            else:
                count["empty"] += 1
                count["empty_right"] += not marked
    total = {key: sum(c[key] for c in counts.values()) for key in ("quoted", "quoted_right", "empty", "empty_right")}
    table = {**counts, "all": total}
    for count in table.values():
        count["quoted_share"] = round(count["quoted_right"] / count["quoted"], 3) if count["quoted"] else None
        count["empty_share"] = round(count["empty_right"] / count["empty"], 3) if count["empty"] else None
    return {"papers": len(records), **table}


def figures_text(table: dict) -> str:
    lines = [f"{table['papers']} papers; aspect: quoted cells right, 'not stated' cells right"]
    for aspect in (*DEFAULT_ASPECTS, "all"):
        c = table[aspect]
        lines.append(
            f"  {aspect:>8}: {c['quoted_right']}/{c['quoted']} ({c['quoted_share']}), "
            f"{c['empty_right']}/{c['empty']} ({c['empty_share']})"
        )
    return "\n".join(lines)
