"""Filter reading measured on the blind set (eval/blind_filters.jsonl): `content` questions whose words only look
like filters ("2048 tokens", "models from 2018 like BERT", "code generation") must set no filter; `request` chats
must end with exactly the filter the writer meant in force; and every request whose date filter leaves no answer
must say so about the filter.

Each chat is played through a real `Conversation`, turn by turn, as a user would type it.
"""

from __future__ import annotations

import sys

from paperchat.api import Assistant
from paperchat.eval.datasets import (
    FILTER_SETS,
    HELD_OUT_FILTER_SETS,
    bundled_file,
    in_dev_half,
    read_jsonl,
    split_group,
)


def load_filter_chats(which: str | None = None, names: tuple[str, ...] = FILTER_SETS) -> list[dict]:
    """The blind filter chats of `names`, or one half of them (a held-out set is read whole)."""
    return [
        record
        for name in names
        for record in read_jsonl(bundled_file(name))
        if which is None or name in HELD_OUT_FILTER_SETS or in_dev_half(split_group(record["_id"])) == (which == "dev")
    ]


def play(assistant: Assistant, record: dict) -> dict:
    """One chat played through a conversation: the filter in force at the end, and how the last turn answered."""
    conversation = assistant.chat()
    for message in record["turns"]:
        answer = conversation.ask(message, k=5, write=False)
    wanted = record["filter"]
    dated = any(name in wanted for name in ("since", "until"))
    return {
        "id": record["_id"],
        "kind": record["kind"],
        "wanted": wanted,
        "read": conversation.filter,
        "right": conversation.filter == wanted,
        "emptied_by_date": dated and not answer.hits,
        "explained": answer.text.startswith("No paper in this index") or " match \u201c" in answer.text,
    }


def filter_reading(
    assistant: Assistant, which: str | None = None, progress: bool = True, names: tuple[str, ...] = FILTER_SETS
) -> list[dict]:
    from tqdm.auto import tqdm

    chats = load_filter_chats(which, names)
    return [play(assistant, r) for r in tqdm(chats, desc="filters", unit="chat", disable=not progress, file=sys.stderr)]


def reading_table(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per kind: chats read right; and the date filters that emptied an answer, explained."""
    table: dict[str, dict[str, int]] = {}
    for row in rows:
        cell = table.setdefault(row["kind"], {"chats": 0, "right": 0})
        cell["chats"] += 1
        cell["right"] += int(row["right"])
    emptied = [row for row in rows if row["emptied_by_date"]]
    table["emptied by a date filter"] = {"chats": len(emptied), "right": sum(row["explained"] for row in emptied)}
    return table


def reading_text(table: dict[str, dict[str, int]], rows: list[dict]) -> str:
    lines = [f"  {kind:26s} right {cell['right']}/{cell['chats']}" for kind, cell in table.items()]
    lines += [f"    wrong: {row['id']} wanted {row['wanted']} read {row['read']}" for row in rows if not row["right"]]
    return "\n".join(lines)
