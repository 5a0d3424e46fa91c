"""The citation checker (`paperchat.citations`) measured on judged claims: `paperchat eval --claims`.

eval/claims.jsonl holds claims written by helpers who read only the abstracts: `supported` ones
paraphrase a sentence of their `source`, `altered` ones change a number, dataset, method,
direction or domain of such a paraphrase. Each claim is checked the way a written answer is:
against the top 5 papers retrieved for it (its own source put in place of the fifth when it is
missing), and these cases are built from it:

- supported: the claim citing its source (flagging it is a false alarm);
- swapped (near): a supported claim citing the best-ranked *other* given paper, the realistic
  wrong citation: a paper on the same topic;
- swapped (random): a supported claim citing a random paper of the corpus put among the sources;
- altered: an altered claim citing its source.

eval/claims2.jsonl has shorter sentences in the style of a written answer; some lean on the one
before them ("It also ..."), which is given as `context`.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from paperchat.api import Assistant
from paperchat.citations import CitationChecker, Support, verdict
from paperchat.eval.datasets import bundled_file, in_dev_half, read_jsonl, split_group

SOURCES = 5
KINDS = ("supported", "swapped (near)", "swapped (random)", "altered")


@dataclass(frozen=True)
class Case:
    """One claim citing one source among the given ones; `unsupported` is the truth."""

    id: str
    kind: str
    change: str  # for altered claims: what was changed
    cited: int
    supports: tuple[Support, ...]

    @property
    def unsupported(self) -> bool:
        return self.kind != "supported"


def load_claims(name: str = "claims", which: str | None = None) -> list[dict]:
    """A claims set, or its dev or test half (all claims about one source paper in one half: `split_group`)."""
    claims = read_jsonl(bundled_file(name))
    return [c for c in claims if which is None or in_dev_half(split_group(c["_id"])) == (which == "dev")]


def build_cases(assistant: Assistant, claims: Sequence[dict], progress: bool = True) -> list[Case]:
    """Every case of every claim, with the checker's evidence from each given source."""
    from tqdm.auto import tqdm

    snapshot = assistant.store.snapshot()
    checker = CitationChecker(assistant.store.embedder.encode, snapshot.tokenizer)
    all_ids = sorted(snapshot.ids.at(snapshot.live_rows()))  # papers, not rows deleted since
    cases = []
    for claim in tqdm(claims, desc="claims", unit="claim", disable=not progress, file=sys.stderr, leave=False):
        ranked = [h.id for h in assistant.search(claim["claim"], SOURCES)]
        given = ranked if claim["source"] in ranked else [*ranked[: SOURCES - 1], claim["source"]]
        stranger = random.Random(claim["_id"]).choice([i for i in all_ids if i not in given])
        papers = snapshot.papers([*given, stranger])
        # A source's support does not depend on the other sources: one pass over all six papers.
        # A claim with a "context" is the second sentence of an answer, read as the checker reads one.
        sources = [(papers[i].title, papers[i].abstract) for i in [*given, stranger]]
        support = dict(zip([*given, stranger], checker.supports([claim["claim"]], sources, [claim.get("context")])[0]))
        if claim["kind"] == "altered":
            cases.append(_case(claim, "altered", support, given, claim["source"]))
            continue
        cases.append(_case(claim, "supported", support, given, claim["source"]))
        cases.append(_case(claim, "swapped (near)", support, given, next(i for i in given if i != claim["source"])))
        slot = max(
            n for n, i in enumerate(given) if i != claim["source"]
        )  # the lowest-ranked other paper makes way for the stranger
        cases.append(_case(claim, "swapped (random)", support, [*given[:slot], stranger, *given[slot + 1 :]], stranger))
    return cases


def _case(claim: dict, kind: str, support: dict[str, Support], sources: list[str], cited: str) -> Case:
    """The claim citing `cited` among `sources` (paper ids in prompt order)."""
    numbered = tuple(replace(support[i], source=n) for n, i in enumerate(sources, start=1))
    return Case(claim["_id"], kind, claim.get("change", ""), sources.index(cited) + 1, numbered)


def flagged(case: Case) -> bool:
    return not verdict([case.cited], case.supports)[0]


def figures(cases: Sequence[Case]) -> dict:
    """False alarms on supported claims, recall of each unsupported kind, precision of "unsupported"."""
    table: dict = {}
    for kind in KINDS:
        chosen = [c for c in cases if c.kind == kind]
        if chosen:
            table[kind] = {"cases": len(chosen), "flagged": sum(map(flagged, chosen))}
    for change in sorted({c.change for c in cases if c.kind == "altered"}):
        chosen = [c for c in cases if c.kind == "altered" and c.change == change]
        table[f"altered: {change}"] = {"cases": len(chosen), "flagged": sum(map(flagged, chosen))}
    flags = [c for c in cases if flagged(c)]
    table["precision of unsupported"] = round(sum(c.unsupported for c in flags) / len(flags), 3) if flags else None
    return table


def figures_text(table: dict) -> str:
    lines = []
    for name, cell in table.items():
        if isinstance(cell, dict):
            rate = cell["flagged"] / cell["cases"]
            what = "false alarms" if name == "supported" else "recall"
            lines.append(f"  {name:22s} flagged {cell['flagged']:>3}/{cell['cases']:<3} ({what} {rate:.3f})")
        else:
            lines.append(f"  {name:22s} {cell}")
    return "\n".join(lines)
