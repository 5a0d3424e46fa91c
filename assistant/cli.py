"""The `paperchat` command: a thin layer over `assistant.Assistant`.

Every command prints human-readable text by default and machine-readable output with
--json (or --format). Mistakes in the input end with a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from assistant.api import Assistant
from assistant.hits import Hit
from assistant.search import Retrieval
from assistant.settings import FUSIONS, MODES
from index.errors import PaperchatError
from index.lexical import ENGINES

EXAMPLES = """\
examples:
  paperchat search "training-free detection of LLM-generated text"
  paperchat search "LoRA" -k 3 --mode bm25 --json
  paperchat ask "pruning large language models"
  paperchat ask "what about vision transformers?" --history "pruning large language models"
  paperchat search --queries eval/questions.jsonl --format trec > run.trec
  paperchat ingest my_papers.jsonl other.csv
  paperchat info --json
  paperchat chat --port 7860
  paperchat eval --out eval-out
"""


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("index options (also PAPERCHAT_* environment variables)")
    group.add_argument("--index", metavar="DIR", help="index folder (default: the user data dir; env PAPERCHAT_INDEX)")
    group.add_argument("--model", help="sentence-transformers model name or path (default: all-MiniLM-L6-v2, packaged)")
    group.add_argument("--chroma-url", metavar="URL", help="use a Chroma server (`chroma run`) at http://HOST:PORT instead of the embedded store")
    group.add_argument("--collection", help="Chroma collection name (default: papers)")
    group.add_argument("--engine", choices=ENGINES, help="BM25 engine (default: bm25s)")
    group.add_argument("--fusion", choices=FUSIONS, help="how hybrid mode fuses the two sides (default: convex, z-scored scores with feedback)")
    group.add_argument("--quiet", "-q", action="store_true", help="no progress bars or notices on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paperchat",
        description="Chat-style research assistant over paper abstracts: hybrid BM25 + vector search with citations.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="add papers to the index (no path: the bundled Daily Papers corpus)",
                                 description="Load Daily Papers pages (.txt), JSONL, CSV/TSV or BEIR corpus.jsonl files and add new or changed papers. Running it twice changes nothing.")
    ingest.add_argument("paths", nargs="*", metavar="PATH", help="files or folders; none means the bundled corpus")
    _common(ingest)

    search = commands.add_parser("search", help="ranked papers for a query, with snippets and why each ranked",
                                 description="Search the index. One QUERY prints ranked hits; --queries FILE runs a batch (JSONL lines with _id/id and text/question, optionally history).")
    search.add_argument("query", nargs="?", help="the question or keywords")
    search.add_argument("-k", type=int, default=10, help="number of results, 1-1000 (default 10)")
    search.add_argument("--mode", choices=MODES, help="hybrid (default), bm25 or vector")
    search.add_argument("--json", action="store_true", help="print {query, mode, took_ms, relevant, hits} as JSON")
    search.add_argument("--queries", metavar="FILE", help="batch: a JSONL file of queries")
    search.add_argument("--format", choices=("jsonl", "trec"), default="jsonl", help="batch output: jsonl (default) or a six-column TREC run")
    search.add_argument("--output", "-o", metavar="FILE", help="batch output file (default: stdout)")
    search.add_argument("--no-gate", action="store_true", help="list hits even when nothing is relevant enough")
    _common(search)

    ask = commands.add_parser("ask", help="a short cited answer built from the abstracts (follow-ups via --history)",
                              description="Answer a question extractively from the top abstracts, with [n] citations. A follow-up ('what about vision?') is rewritten against --history.")
    ask.add_argument("message", help="your question")
    ask.add_argument("--history", action="append", default=[], metavar="MESSAGE", help="an earlier question in the conversation (repeatable, oldest first)")
    ask.add_argument("-k", type=int, default=5, help="number of sources (default 5)")
    ask.add_argument("--mode", choices=MODES)
    ask.add_argument("--json", action="store_true")
    _common(ask)

    info = commands.add_parser("info", help="where the index is, its model, BM25 engine and size")
    info.add_argument("--json", action="store_true")
    _common(info)

    remove = commands.add_parser("remove", help="delete papers by id from Chroma and BM25")
    remove.add_argument("ids", nargs="+", metavar="ID")
    _common(remove)

    chat = commands.add_parser("chat", help="start the Gradio web chat (http://127.0.0.1:7860)")
    chat.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    chat.add_argument("--port", type=int, default=7860)
    chat.add_argument("--share", action="store_true", help="also create a public Gradio share link")
    chat.add_argument("--auth", metavar="USER:PASSWORD", help="require a login (or env PAPERCHAT_AUTH)")
    _common(chat)

    evaluate = commands.add_parser("eval", help="retrieval-quality evaluation (see `python -m eval --help`)", add_help=False)
    evaluate.add_argument("rest", nargs=argparse.REMAINDER)

    bench = commands.add_parser("bench", help="latency / throughput benchmark (see `python -m eval.bench --help`)", add_help=False)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _open(args: argparse.Namespace, bootstrap: bool = True, load_model: bool = True) -> Assistant:
    notify = (lambda message: None) if args.quiet else (lambda message: print(f"paperchat: {message}", file=sys.stderr))
    return Assistant.open(
        args.index,
        bootstrap=bootstrap,
        load_model=load_model,
        progress=not args.quiet,
        notify=notify,
        model=args.model,
        chroma_url=args.chroma_url,
        collection=args.collection,
        engine=args.engine,
        fusion=args.fusion,
    )


def format_hit(hit: Hit, width: int = 100) -> str:
    pages = ", ".join(f"{p} ({d})" if d else p for p, d in zip(hit.citation.pages, hit.citation.dates or [""] * len(hit.citation.pages)))
    lines = [f"{hit.rank:>2}. {hit.title}", f"    id: {hit.id}"]
    lines += textwrap.wrap(hit.snippet, width, initial_indent="    ", subsequent_indent="    ")
    lines.append(f"    why: {hit.why()}")
    lines.append(f"    cite: {hit.citation.url}" + (f"  [pages: {pages}]" if pages else ""))
    if hit.metadata.get("code_links"):
        lines.append(f"    code: {', '.join(hit.metadata['code_links'])}")
    return "\n".join(lines)


def _print_retrieval(result: Retrieval, as_json: bool, gate: bool) -> None:
    hits = result.hits if result.relevant or not gate else []
    if as_json:
        payload = {"query": result.query, "mode": result.mode, "took_ms": result.took_ms, "relevant": result.relevant,
                   "relevance": result.relevance, "hits": [h.to_dict() for h in hits]}
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    if not hits:
        print(f"Nothing relevant for {result.query!r} (relevance {result.relevance:.2f}); use --no-gate to list the closest papers anyway.")
        return
    print(f"{len(hits)} results for {result.query!r} ({result.mode}, {result.took_ms:.0f} ms)\n")
    print("\n\n".join(format_hit(h) for h in hits))


def read_queries(path: str) -> list[dict]:
    """Batch queries: JSONL lines with _id/id and text/question, optional history (earlier messages)."""
    file = Path(path)
    if not file.is_file():
        raise PaperchatError(f"{path}: no such file")
    queries = []
    for number, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PaperchatError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise PaperchatError(f"{path}:{number}: expected a JSON object")
        turns = record.get("turns")
        text = record.get("text") or record.get("question") or record.get("query") or (turns[-1] if isinstance(turns, list) and turns else None)
        history = record.get("history") or (turns[:-1] if isinstance(turns, list) else [])
        if not isinstance(text, str) or not text.strip():
            raise PaperchatError(f"{path}:{number}: no query text (expected a 'text' or 'question' field)")
        query_id = str(record.get("_id", record.get("id", record.get("query_id", number))))
        queries.append({"id": query_id, "text": text, "history": [str(h) for h in history]})
    return queries


def run_batch(assistant: Assistant, args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    queries = read_queries(args.queries)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for query in tqdm(queries, desc="searching", unit="query", disable=args.quiet, file=sys.stderr):
            searched = assistant.rewrite(query["text"], query["history"])
            result = assistant.retrieve(searched, args.k, args.mode)
            hits = result.hits if result.relevant or args.no_gate else []
            if args.format == "trec":
                for hit in hits:
                    out.write(f"{query['id']} Q0 {hit.id} {hit.rank} {hit.score:.6f} paperchat\n")
            else:
                record = {"query_id": query["id"], "query": query["text"], "searched": result.query, "relevant": result.relevant,
                          "took_ms": result.took_ms, "hits": [h.to_dict() for h in hits]}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("eval", "bench"):  # their own parsers, --help included
        return _delegate(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args)
    except PaperchatError as exc:
        print(f"paperchat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paperchat: interrupted", file=sys.stderr)
        return 130


def _delegate(command: str, rest: list[str]) -> int:
    if command == "eval":
        from eval.__main__ import main as eval_main

        return eval_main(rest)
    from eval.bench import main as bench_main

    return bench_main(rest)


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "search":
        if args.query is not None and not args.query.strip() and not args.queries:
            raise PaperchatError("the query is empty; type a question or some keywords")
        if (args.query is None) == (args.queries is None):
            raise PaperchatError("give either a QUERY or --queries FILE (see paperchat search --help)")
        assistant = _open(args)
        if args.queries:
            run_batch(assistant, args)
        else:
            result = assistant.retrieve(args.query, args.k, args.mode)
            for notice in result.notices:
                print(f"paperchat: {notice}", file=sys.stderr)
            _print_retrieval(result, args.json, gate=not args.no_gate)
        return 0
    if args.command == "ask":
        answer = _open(args).ask(args.message, args.history, args.k, args.mode)
        if args.json:
            print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        else:
            if answer.rewritten:
                print(f"(searched: {answer.query})\n")
            print(textwrap.fill(answer.text, 100) + "\n")
            for hit in answer.hits:
                print(format_hit(hit) + "\n")
        return 0
    if args.command == "ingest":
        assistant = _open(args, bootstrap=False)
        load_report, ingest_report = assistant.ingest(args.paths or None, progress=not args.quiet)
        for problem in load_report.problems:
            print(f"paperchat: skipped {problem}", file=sys.stderr)
        print(f"{load_report.summary()}\n{ingest_report.summary()} ({assistant.location})")
        return 0
    if args.command == "info":
        info = _open(args, bootstrap=False, load_model=False).info()
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print("\n".join(f"{key:>10}: {value}" for key, value in info.items()))
        return 0
    if args.command == "remove":
        removed = _open(args, bootstrap=False, load_model=False).remove(args.ids)
        missing = sorted(set(args.ids) - set(removed))
        print(f"removed {len(removed)} paper(s)" + (f"; not in the index: {', '.join(missing)}" if missing else ""))
        return 0
    if args.command == "chat":
        from ui.app import launch

        auth = args.auth or os.environ.get("PAPERCHAT_AUTH")
        launch(_open(args), host=args.host, port=args.port, share=args.share, auth=auth)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
