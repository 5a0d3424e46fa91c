"""`paperchat eval` / `python -m paperchat.eval`: retrieval quality per dataset and per mode."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from paperchat.eval.datasets import (
    BUNDLED_SETS,
    FILTER_SETS,
    HALVES,
    HELD_OUT_FILTER_SETS,
    half,
    load_beir,
    load_bundled_set,
    read_trec_qrels,
    read_trec_run,
)
from paperchat.eval.runner import DEFAULT_VARIANTS, VariantResult, evaluate_dataset, score_run
from paperchat.index.errors import PaperchatError


def default_index_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("paperchat")) / "eval-indexes"


DESCRIPTION = (
    "Measure retrieval quality (nDCG@10, Recall@5/10/100, MRR@10, MAP@100, latency) of bm25, vector, "
    "hybrid and plain RRF on the bundled judged questions and on BEIR datasets."
)
EXAMPLES = """examples:
  paperchat eval --out eval-out
  paperchat eval --beir ../shared/benchmarks/cranfield --sets none
  paperchat eval --half dev --beir ../shared/benchmarks/cisi
  paperchat eval --claims --half test
  paperchat eval --aspects --half test
  paperchat eval --digest --half test
  paperchat eval --qrels qrels.tsv --run other_system.trec --run paperchat.trec"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paperchat eval",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `paperchat eval` (also used by the `paperchat` command's own parser)."""
    parser.add_argument(
        "--sets",
        default=",".join(BUNDLED_SETS),
        help=f"bundled judged sets to run, comma-separated, or 'none' (default: {','.join(BUNDLED_SETS)})",
    )
    parser.add_argument(
        "--beir",
        action="append",
        default=[],
        metavar="DIR",
        help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv); repeatable",
    )
    parser.add_argument(
        "--variants", help=f"comma-separated subset of: {', '.join(v.name for v in DEFAULT_VARIANTS)} (default: all)"
    )
    parser.add_argument(
        "--index-root",
        metavar="DIR",
        help="where evaluation indexes are kept between runs (default: the user cache dir)",
    )
    parser.add_argument("--out", metavar="DIR", default="eval-out", help="report folder (default: eval-out)")
    parser.add_argument(
        "--qrels",
        metavar="FILE",
        help="score TREC runs given with --run against these qrels instead of running paperchat",
    )
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="FILE",
        help="a six-column TREC run to score (with --qrels); repeatable",
    )
    parser.add_argument(
        "--half",
        choices=HALVES,
        help="only the dev or the test half of every dataset's queries "
        "(the split the fusion study chose defaults on; see eval/README.md)",
    )
    parser.add_argument(
        "--fit-gate",
        metavar="FILE",
        help="fit the relevance gate's models on the dev half and write them to FILE "
        "(the format of assistant/gate.json)",
    )
    parser.add_argument(
        "--claims",
        action="store_true",
        help="measure the citation checker of written answers on the judged claims "
        "(eval/claims*.jsonl): false alarms on supported claims, recall of swapped citations and altered claims",
    )
    parser.add_argument(
        "--aspects",
        action="store_true",
        help="measure comparison tables on the blind aspect judgments (eval/blind_aspects.jsonl): cells quoting a "
        "sentence the judge marked, and 'not stated' cells the judge left empty; no index or model needed",
    )
    parser.add_argument(
        "--digest",
        action="store_true",
        help="measure the digest of saved questions: the blind topics saved, one bundled paper in five held out of "
        "an index and then ingested as new, the digest scored against the graded judgments",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except PaperchatError as exc:
        print(f"paperchat eval: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    # Imported here: the report's matplotlib and the gate's scikit-learn are slow to import, which `paperchat search`
    # must not pay for its parser.
    from paperchat.api import Assistant
    from paperchat.eval.filters import filter_reading, reading_table, reading_text
    from paperchat.eval.gate import accuracy, accuracy_text, decisions, fit_gate, labelled_questions
    from paperchat.eval.report import text_table, write_outputs

    out = Path(args.out)
    root = Path(args.index_root) if args.index_root else default_index_root()
    if args.fit_gate:
        others = [(_benchmark_index(root, Path(folder), args.quiet), load_beir(Path(folder))) for folder in args.beir]
        print(
            fit_gate(
                Assistant.open(root / "bundled", progress=not args.quiet),
                Path(args.fit_gate),
                others,
                progress=not args.quiet,
            )
        )
        print(f"gate models written to {args.fit_gate}; copy them to assistant/gate.json to ship them")
        return 0
    if args.digest:
        from paperchat.eval.digest import figures_text as digest_text
        from paperchat.eval.digest import measure

        table = measure(root, args.half, progress=not args.quiet)
        print(f"== digest{f' ({args.half} half)' if args.half else ''}\n{digest_text(table)}")
        out.mkdir(parents=True, exist_ok=True)
        (out / "digest.json").write_text(json.dumps(table, indent=2), encoding="utf-8")
        return 0
    if args.aspects:
        from paperchat.eval.aspects import figures as aspect_figures
        from paperchat.eval.aspects import figures_text as aspect_text
        from paperchat.eval.aspects import load_aspects
        from paperchat.eval.datasets import ASPECT_SETS
        from paperchat.index.loaders import load_bundled

        papers = {p.id: p for p in load_bundled()[0]}
        tables = {name: aspect_figures(papers, load_aspects(name, args.half)) for name in ASPECT_SETS}
        for name, table in tables.items():
            print(f"== comparison tables, {name}{f' ({args.half} half)' if args.half else ''}\n{aspect_text(table)}")
        out.mkdir(parents=True, exist_ok=True)
        (out / "aspects.json").write_text(json.dumps(tables, indent=2), encoding="utf-8")
        return 0
    if args.claims:
        from paperchat.eval.citations import build_cases, figures, figures_text, load_claims
        from paperchat.eval.datasets import CLAIM_SETS

        assistant = Assistant.open(root / "bundled", progress=not args.quiet)
        tables = {}
        for name in CLAIM_SETS:
            tables[name] = figures(build_cases(assistant, load_claims(name, args.half), progress=not args.quiet))
            print(
                f"== citation checker, {name}{f' ({args.half} half)' if args.half else ''}: "
                f"claims flagged as unsupported\n{figures_text(tables[name])}\n"
            )
        out.mkdir(parents=True, exist_ok=True)
        (out / "claims.json").write_text(json.dumps(tables, indent=2), encoding="utf-8")
        return 0
    if args.qrels:
        if not args.run:
            raise PaperchatError("--qrels needs at least one --run FILE")
        qrels = read_trec_qrels(Path(args.qrels))
        results = []
        for path in map(Path, args.run):
            metrics, per_query = score_run(qrels, read_trec_run(path))
            results.append(VariantResult(path.stem, metrics, per_query))
        print(text_table(Path(args.qrels).stem, results, len(qrels)))
        write_outputs(out, "runs", results, len(qrels))
        return 0
    variants = DEFAULT_VARIANTS
    if args.variants:
        wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = set(wanted) - {v.name for v in DEFAULT_VARIANTS}
        if unknown:
            raise PaperchatError(
                f"unknown variant(s) {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(v.name for v in DEFAULT_VARIANTS)}"
            )
        variants = tuple(v for v in DEFAULT_VARIANTS if v.name in wanted)
    sets = [] if args.sets.strip() == "none" else [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown_sets = set(sets) - set(BUNDLED_SETS)
    if unknown_sets:
        raise PaperchatError(
            f"unknown set(s) {', '.join(sorted(unknown_sets))}; choose from {', '.join(BUNDLED_SETS)} or none"
        )
    summary: dict = {}
    if sets:
        assistant = Assistant.open(root / "bundled", progress=not args.quiet)
        for name in sets:
            dataset = _half(load_bundled_set(name), args.half)
            summary[dataset.name] = _evaluate(assistant, dataset, variants, out, args.quiet)
        table = accuracy(decisions(assistant, labelled_questions(args.half), progress=not args.quiet))
        summary["relevance_gate"] = table
        print(
            f"== relevance gate{f' ({args.half} half)' if args.half else ''}: "
            f"answerable questions answered, off-topic ones declined\n{accuracy_text(table)}\n"
        )
        rows = filter_reading(assistant, args.half, not args.quiet, FILTER_SETS + HELD_OUT_FILTER_SETS)
        summary["filter_reading"] = reading_table(rows)
        print(
            f"== filter reading{f' ({args.half} half)' if args.half else ''}: content questions set no filter, "
            f"requests end with the filter meant\n{reading_text(summary['filter_reading'], rows)}\n"
        )
    for folder in args.beir:
        dataset = load_beir(Path(folder))
        assistant = _benchmark_index(root, Path(folder), args.quiet)
        judged = _half(dataset, args.half)
        summary[judged.name] = _evaluate(assistant, judged, variants, out, args.quiet)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"reports written to {out}/")
    return 0


def _benchmark_index(root: Path, folder: Path, quiet: bool):
    """The evaluation index of a BEIR folder under `root`, brought up to date with its corpus."""
    from paperchat.api import Assistant

    dataset = load_beir(folder)
    assistant = Assistant.open(root / dataset.name, bootstrap=False, progress=not quiet)
    load_report, ingest_report = assistant.ingest(dataset.corpus, progress=not quiet)
    if not quiet:
        print(f"paperchat eval: {dataset.name}: {load_report.summary()}; {ingest_report.summary()}", file=sys.stderr)
    return assistant


def _half(dataset, which: str | None):
    return half(dataset, which) if which else dataset


def _evaluate(assistant, dataset, variants, out: Path, quiet: bool) -> dict:
    from paperchat.eval.report import kind_table, text_table, write_outputs

    results = evaluate_dataset(assistant, dataset, variants, progress=not quiet)
    print(text_table(dataset.name, results, len(dataset.queries)))
    kinds = kind_table(dataset, results)
    print((kinds + "\n") if kinds else "")
    return write_outputs(out, dataset.name, results, len(dataset.queries))


if __name__ == "__main__":
    sys.exit(main())
