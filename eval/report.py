"""Writers for evaluation results: a stdout table, JSON, Markdown and a PNG chart per dataset."""

from __future__ import annotations

import json
from pathlib import Path

from paperchat.eval.runner import METRICS, VariantResult, wins_and_losses

COLUMNS = METRICS + ["p50_ms", "p95_ms"]


def rows(results: list[VariantResult]) -> list[list[str]]:
    return [[r.variant] + [f"{r.metrics[m]:.3f}" for m in METRICS] + [f"{r.p50:.1f}", f"{r.p95:.1f}"] for r in results]


def text_table(name: str, results: list[VariantResult], queries: int) -> str:
    header = ["variant"] + COLUMNS
    body = rows(results)
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    line = lambda row: "  ".join(
        str(cell).ljust(width) if i == 0 else str(cell).rjust(width) for i, (cell, width) in enumerate(zip(row, widths))
    )
    return "\n".join([f"== {name} ({queries} queries)", line(header)] + [line(row) for row in body])


def kind_table(dataset, results: list[VariantResult]) -> str:
    """nDCG@10 per kind of query (chats: narrowing / aspect / shift), one line per variant; empty without kinds."""
    kinds = sorted({q.kind for q in dataset.queries if q.kind})
    if len(kinds) < 2:
        return ""
    by_kind = {kind: [q.id for q in dataset.queries if q.kind == kind] for kind in kinds}
    lines = [f"   by kind: {', '.join(f'{kind} ({len(ids)})' for kind, ids in by_kind.items())}"]
    for result in results:
        cells = [f"{sum(result.per_query.get(q, 0.0) for q in ids) / len(ids):.3f}" for ids in by_kind.values()]
        lines.append(f"   {result.variant:14s} " + "  ".join(cells))
    return "\n".join(lines)


def markdown_table(results: list[VariantResult]) -> str:
    header = ["variant"] + COLUMNS
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    return "\n".join(lines)


def write_outputs(out: Path, name: str, results: list[VariantResult], queries: int) -> dict:
    """Write <name>.json, <name>.md, <name>.png and one TREC run per variant; return the JSON payload."""
    from paperchat.eval.datasets import write_trec_run

    out.mkdir(parents=True, exist_ok=True)
    comparison = wins_and_losses(results)
    payload = {
        "dataset": name,
        "queries": queries,
        "variants": {r.variant: {**r.metrics, "p50_ms": r.p50, "p95_ms": r.p95} for r in results},
        "hybrid_vs": {v: {"wins": len(t["wins"]), "losses": len(t["losses"]), **t} for v, t in comparison.items()},
    }
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    md = [
        f"# {name} ({queries} queries)",
        "",
        markdown_table(results),
        "",
        "## Hybrid against each variant (nDCG@10 per query)",
        "",
    ]
    for variant, table in comparison.items():
        md.append(
            f"- vs {variant}: hybrid better on {len(table['wins'])}, worse on {len(table['losses'])}"
            + (
                f" (worse: {', '.join(table['losses'][:15])}{' …' if len(table['losses']) > 15 else ''})"
                if table["losses"]
                else ""
            )
        )
    (out / f"{name}.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    for r in results:
        write_trec_run(out / f"{name}.{r.variant}.trec", r.run)
    _chart(out / f"{name}.png", name, results)
    return payload


def _chart(path: Path, name: str, results: list[VariantResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = ["ndcg@10", "recall@5", "recall@10", "mrr@10", "map@100"]
    x = np.arange(len(metrics))
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, r in enumerate(results):
        ax.bar(x + i * width, [r.metrics[m] for m in metrics], width, label=r.variant)
    ax.set_xticks(x + width * (len(results) - 1) / 2, metrics)
    ax.set_ylim(0, 1)
    ax.set_title(f"paperchat retrieval quality: {name}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
