"""The `paperchat` command: the composition root, a thin layer over `paperchat.Assistant`.

One function per subcommand (`cmd_*`), each reached through argparse's `set_defaults`. This
is the one module that may import the web UI and the evaluation tools. Every command prints
human-readable text by default and machine-readable output with --json (or --format).
Mistakes in the input end with a one-line `paperchat: error: ...` and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from paperchat.api import Assistant
from paperchat.chat import describe_searched, nothing_relevant
from paperchat.compare import TABLE_FORMATS, table_text
from paperchat.conversation import Conversation
from paperchat.export import EXPORT_FORMATS, export
from paperchat.filters import Filter
from paperchat.hits import Hit
from paperchat.index.bm25 import ENGINES
from paperchat.index.errors import PaperchatError
from paperchat.index.loaders import FORMATS, ingest_filter
from paperchat.index.papers import web_url
from paperchat.index.tokenize import CONTROL_CHARACTERS
from paperchat.search import Retrieval
from paperchat.settings import FUSIONS, MODES
from paperchat.watch import DIGEST_FORMATS, describe, digest_text

EXAMPLES = """\
examples:
  paperchat search "training-free detection of LLM-generated text"
  paperchat search "LoRA" -k 3 --mode bm25 --json
  paperchat ask "pruning large language models"
  paperchat ask "pruning large language models" --session chat.json
  paperchat ask "only the ones with code" --session chat.json
  paperchat search --queries questions.jsonl --format trec -o run.trec
  paperchat ingest my_papers.jsonl other.csv
  paperchat info --json
  paperchat chat --port 7860
  paperchat eval --out eval-out

Run `paperchat COMMAND --help` for a command's options and examples.
"""


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line: `paperchat: error: ...`, exit status 2."""

    def error(self, message: str):
        self.exit(2, terminal_text(f"paperchat: error: {message} (see `{self.prog} --help`)") + "\n")


def terminal_text(text: str) -> str:
    """Text the terminal shows as text: control characters (ANSI escapes, BEL, C1, bidi and zero-width
    controls) become spaces, newlines and tabs stay. Corpus text, endpoint replies and error messages
    are data: none of it may recolour the terminal, retitle the window or hide what follows."""
    return CONTROL_CHARACTERS.sub(" ", text)


def json_text(payload, indent: int | None = None) -> str:
    """JSON for stdout: control characters inside strings are written as \\uXXXX escapes, never raw
    (json.dumps leaves C1 and bidi controls as they are); the value read back is unchanged."""
    dumped = json.dumps(payload, ensure_ascii=False, indent=indent)
    return CONTROL_CHARACTERS.sub(lambda control: f"\\u{ord(control.group()):04x}", dumped)


def say(text: str = "", err: bool = False, end: str = "\n") -> None:
    """Print human-readable text (on stderr with `err`) through `terminal_text`: the one way the CLI writes prose.
    A piece without a line end (a streamed token) is flushed so that it shows at once."""
    print(terminal_text(text), end=end, file=sys.stderr if err else sys.stdout, flush=not end)


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("index options (also PAPERCHAT_* environment variables)")
    group.add_argument("--index", metavar="DIR", help="index folder (default: the user data dir; env PAPERCHAT_INDEX)")
    group.add_argument("--model", help="sentence-transformers model name or path (default: all-MiniLM-L6-v2, packaged)")
    group.add_argument(
        "--chroma-url",
        metavar="URL",
        help="use a Chroma server (`chroma run`) at http://HOST:PORT instead of the embedded store",
    )
    group.add_argument("--collection", help="Chroma collection name (default: papers)")
    group.add_argument("--engine", choices=ENGINES, help="BM25 engine (default: bm25s)")
    group.add_argument(
        "--fusion",
        choices=FUSIONS,
        help="how hybrid mode fuses the two sides (default: convex, z-scored scores with feedback)",
    )
    group.add_argument("--quiet", "-q", action="store_true", help="no progress bars or notices on stderr")


def _llm_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("written answers (optional; also PAPERCHAT_LLM_* environment variables)")
    group.add_argument(
        "--llm-url",
        metavar="URL",
        help="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1 (Ollama) or "
        "http://127.0.0.1:8080/v1 (llama.cpp); the key comes from PAPERCHAT_LLM_API_KEY. "
        "Unset: extractive answers, no network",
    )
    group.add_argument("--llm-model", metavar="NAME", help="model name at that endpoint (default: the first it lists)")


def _filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (applied to both sides before fusion)")
    group.add_argument("--since", metavar="DATE", help="papers dated on or after DATE (2024, 2024-06 or 2024-06-01)")
    group.add_argument("--until", metavar="DATE", help="papers dated on or before DATE")
    group.add_argument("--author", metavar="NAME", help="an author's name contains NAME (case and accents ignored)")
    group.add_argument("--category", metavar="CAT", help="papers in this category, e.g. cs.CL")
    group.add_argument("--venue", metavar="TEXT", help="the venue contains TEXT")
    group.add_argument(
        "--source", metavar="TEXT", help="a source (listing page or input file) contains TEXT, e.g. 'Jun 6'"
    )
    group.add_argument("--has-code", action="store_true", default=None, help="papers with a code link")


def _where(args: argparse.Namespace) -> dict:
    return {
        name: getattr(args, name) for name in ("since", "until", "author", "category", "venue", "source", "has_code")
    }


def _command(commands, name: str, handler, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + textwrap.indent(examples.strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    from paperchat.eval import __main__ as evaluation
    from paperchat.eval import bench

    parser = Parser(
        prog="paperchat",
        description="Chat-style research assistant over paper abstracts: hybrid BM25 + vector search with citations.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    ingest = _command(
        commands,
        "ingest",
        cmd_ingest,
        "add papers to the index (no path: the bundled Daily Papers corpus)",
        "Load Daily Papers pages (.txt), JSONL, CSV/TSV, BEIR corpus.jsonl, the arXiv metadata snapshot, "
        "OpenAlex works, Daily Papers API JSON, BibTeX or RIS files and add new or changed papers. "
        "Running it twice changes nothing; "
        "a paper seen again in a new source (matched by arXiv id, DOI or title) gains that source.",
        "paperchat ingest my_papers.jsonl library.bib\n"
        "paperchat ingest arxiv-metadata-oai-snapshot.json --category cs.CL --since 2024-01-01\n"
        "paperchat ingest beir/scifact --index ~/scifact-index",
    )
    ingest.add_argument("paths", nargs="*", metavar="PATH", help="files or folders; none means the bundled corpus")
    ingest.add_argument(
        "--format", choices=FORMATS, help="read every file as this format (default: recognised from the content)"
    )
    ingest.add_argument(
        "--category",
        action="append",
        default=[],
        metavar="CAT",
        help="keep only papers in this category, e.g. cs.CL (repeatable)",
    )
    ingest.add_argument(
        "--since", metavar="DATE", help="keep only papers dated on or after DATE (2024, 2024-06 or 2024-06-01)"
    )
    ingest.add_argument("--until", metavar="DATE", help="keep only papers dated on or before DATE")
    _common(ingest)

    search = _command(
        commands,
        "search",
        cmd_search,
        "ranked papers for a query, with snippets and why each ranked",
        "Search the index. One QUERY prints ranked hits; --queries FILE runs a batch (JSONL lines with _id/id and "
        "text/question, optionally history or turns). When nothing is relevant enough, nothing is listed "
        "(see --no-gate).",
        'paperchat search "speculative decoding" -k 5\npaperchat search "LoRA" --mode bm25 --json\n'
        'paperchat search "code generation" --since 2024 --has-code\n'
        'paperchat search "model merging" -k 20 --format bibtex > merging.bib\n'
        "paperchat search --queries q.jsonl --format trec -o run.trec",
    )
    search.add_argument("query", nargs="?", help="the question or keywords")
    search.add_argument("-k", type=int, default=10, help="number of results, 1-1000 (default 10)")
    search.add_argument("--mode", choices=MODES, help="hybrid (default), bm25 or vector")
    search.add_argument(
        "--json", action="store_true", help="print {query, mode, took_ms, relevant, relevance, hits} as JSON"
    )
    search.add_argument("--queries", metavar="FILE", help="batch: a JSONL file of queries")
    search.add_argument(
        "--format",
        choices=("jsonl", "trec", *EXPORT_FORMATS),
        help="bibtex, ris or csljson: the hits for a reference manager; batch output: jsonl (default: hits as "
        "every surface shows them, with the gate's decision) or a six-column TREC run (the ranking of every query, "
        "for scoring tools)",
    )
    search.add_argument("--output", "-o", metavar="FILE", help="batch output file (default: stdout)")
    search.add_argument("--no-gate", action="store_true", help="list hits even when nothing is relevant enough")
    _filters(search)
    _common(search)

    ask = _command(
        commands,
        "ask",
        cmd_ask,
        "a short cited answer from the abstracts (a chat kept in --session FILE)",
        "Answer a question from the top abstracts, with [n] citations, or say that nothing is relevant. The answer is "
        "extractive (sentences of the abstracts) unless an LLM endpoint is given: then the model writes it, "
        "it streams to the terminal, and every citation is checked against its abstract afterwards. "
        "With --session FILE the chat is kept in that JSON file (created if missing): a follow-up ('what about "
        "vision?'), a filter request ('only the ones with code', 'clear the filters') or a pointer ('more like [2]', "
        "'compare [1] and [3]') is read against the turns before it. --history gives earlier messages for one-off use.",
        'paperchat ask "how do people detect LLM-generated text?" --session chat.json\n'
        'paperchat ask "only the ones with code" --session chat.json\n'
        'paperchat ask "more like [2]" --session chat.json\n'
        'paperchat ask "any that need no training?" --history "how do people detect LLM-generated text?" --json\n'
        'paperchat ask "how is LoRA made cheaper?" --llm-url http://127.0.0.1:11434/v1 --llm-model llama3.2',
    )
    ask.add_argument("message", help="your question")
    ask.add_argument(
        "--history",
        action="append",
        default=[],
        metavar="MESSAGE",
        help="an earlier question in the conversation (repeatable, oldest first)",
    )
    ask.add_argument(
        "--session",
        metavar="FILE",
        help="keep the chat in this JSON file: read if present, extended with this turn (created if missing)",
    )
    ask.add_argument("-k", type=int, default=5, help="number of sources (default 5)")
    ask.add_argument("--mode", choices=MODES, help="hybrid (default), bm25 or vector")
    ask.add_argument(
        "--json",
        action="store_true",
        help="print the answer, what was searched, the citation check and the sources as JSON",
    )
    ask.add_argument(
        "--no-llm", action="store_true", help="the extractive answer even when an LLM endpoint is configured"
    )
    ask.add_argument(
        "--evidence",
        action="store_true",
        help="print each answer sentence with the source sentence that bears it out (quoted, with where it stands)",
    )
    _llm_options(ask)
    _filters(ask)
    _common(ask)

    info = _command(
        commands,
        "info",
        cmd_info,
        "where the index is, its model, BM25 engine and size",
        "Describe an index: location, embedding model, BM25 engine, number of papers and passages.",
        "paperchat info\npaperchat info --index ~/scifact-index --json",
    )
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    _llm_options(info)
    _common(info)

    compare = _command(
        commands,
        "compare",
        cmd_compare,
        "line papers up in a table: problem, approach, data, result, code",
        "One row per paper, one column per aspect, each cell a sentence quoted from that paper's abstract (or "
        "'not stated' when the abstract does not say). Ids are shown by `paperchat search`; no model is needed. "
        "With --write an LLM words each cell, and every wording is checked against the abstract: one the abstract "
        "bears out is shown, one it does not is marked beside the quote.",
        "paperchat compare light-schrodinger-bridge lora-learns-less-and-forgets-less\n"
        'paperchat compare ID1 ID2 ID3 --format markdown --aspect "compute cost" --aspect result\n'
        "paperchat compare ID1 ID2 --format csv > table.csv\n"
        "paperchat compare ID1 ID2 --write --llm-url http://127.0.0.1:11434/v1 --llm-model llama3.2",
    )
    compare.add_argument("ids", nargs="+", metavar="ID", help="paper ids, in the order of the rows")
    compare.add_argument("--format", choices=TABLE_FORMATS, default="text", help="text (default), markdown, csv, json")
    compare.add_argument(
        "--aspect",
        action="append",
        default=[],
        metavar="ASPECT",
        help="a column (repeatable): problem, approach, data, result, code, or your own words, e.g. 'compute cost' "
        "(default: the five named)",
    )
    compare.add_argument(
        "--write", action="store_true", help="let the configured LLM word the cells, each checked against its abstract"
    )
    _llm_options(compare)
    _common(compare)

    watch = _command(
        commands,
        "watch",
        cmd_watch,
        "save questions whose new answers `paperchat digest` lists",
        "Saved questions live beside the index (watch.json). The first one marks every paper already in the index "
        "as seen, so the first digest lists only papers added after it.",
        'paperchat watch add "efficient fine-tuning of large language models"\n'
        'paperchat watch add "diffusion model distillation" --since 2024 --has-code\n'
        "paperchat watch list\npaperchat watch remove 2",
    )
    watch.add_argument("action", choices=("add", "list", "remove"), help="add a question, list them, or remove one")
    watch.add_argument("what", nargs="?", help="the question (add) or its number in the list (remove)")
    _filters(watch)
    _common(watch)

    digest = _command(
        commands,
        "digest",
        cmd_digest,
        "new papers that answer your saved questions",
        "For each saved question, the papers added since the last digest (or dated on or after --since) that the "
        "relevance gate accepts for it, best first, each with the sentence of its abstract that matches best. "
        "Typical use: ingest today's Daily Papers page, then read the digest.",
        "paperchat ingest todays-page.txt && paperchat digest\n"
        "paperchat digest --since 2024-06 --format markdown\npaperchat digest --format atom > digest.xml",
    )
    digest.add_argument("--since", metavar="DATE", help="papers dated on or after DATE instead of those not seen yet")
    digest.add_argument("--format", choices=DIGEST_FORMATS, default="text", help="text (default), markdown, json, atom")
    digest.add_argument(
        "--keep", action="store_true", help="do not mark the papers as seen (the next digest lists them again)"
    )
    _common(digest)

    remove = _command(
        commands,
        "remove",
        cmd_remove,
        "delete papers by id from the index",
        "Delete papers (and their passages) from Chroma and the derived snapshot. Ids are shown by `paperchat search`.",
        "paperchat remove light-schrodinger-bridge\npaperchat remove id1 id2 --index ~/scifact-index",
    )
    remove.add_argument("ids", nargs="+", metavar="ID", help="paper ids to delete")
    _common(remove)

    chat = _command(
        commands,
        "chat",
        cmd_chat,
        "start the Gradio web chat (http://127.0.0.1:7860)",
        "Serve the web chat. It binds to this machine only unless --host says otherwise.",
        "paperchat chat\npaperchat chat --port 8080 --auth alice:secret",
    )
    chat.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    chat.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    chat.add_argument("--share", action="store_true", help="also create a public Gradio share link (needs --auth)")
    chat.add_argument(
        "--share-without-auth",
        action="store_true",
        help="allow --share without a login: anyone with the link can read the index",
    )
    chat.add_argument("--auth", metavar="USER:PASSWORD", help="require a login (or env PAPERCHAT_AUTH)")
    _llm_options(chat)
    _common(chat)

    evaluate = commands.add_parser(
        "eval",
        help="retrieval-quality evaluation on judged sets and BEIR folders",
        description=evaluation.DESCRIPTION,
        epilog=evaluation.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluation.add_arguments(evaluate)
    evaluate.set_defaults(handler=evaluation.run)

    benchmark = commands.add_parser(
        "bench",
        help="latency / throughput benchmark against the common RAG stack",
        description=bench.__doc__,
        epilog=bench.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_arguments(benchmark)
    benchmark.set_defaults(handler=bench.run)
    return parser


def _open(args: argparse.Namespace, bootstrap: bool = True, load_model: bool = True, create: bool = True) -> Assistant:
    notify = (lambda message: None) if args.quiet else (lambda message: say(f"paperchat: {message}", err=True))
    return Assistant.open(
        args.index,
        bootstrap=bootstrap,
        create=create,
        load_model=load_model,
        progress=not args.quiet,
        notify=notify,
        model=args.model,
        chroma_url=args.chroma_url,
        collection=args.collection,
        engine=args.engine,
        fusion=args.fusion,
        llm_url=getattr(args, "llm_url", None),
        llm_model=getattr(args, "llm_model", None),
    )


def format_hit(hit: Hit, width: int = 100) -> str:
    """A hit as terminal text: corpus text with control characters removed, only http(s) urls shown as links."""
    pages = hit.citation.sources_line()
    byline = hit.citation.byline()
    lines = [f"{hit.rank:>2}. {hit.title}"] + ([f"    {byline}"] if byline else []) + [f"    id: {hit.id}"]
    lines += textwrap.wrap(hit.snippet, width, initial_indent="    ", subsequent_indent="    ")
    lines.append(f"    why: {hit.why()}")
    lines.append(f"    cite: {web_url(hit.citation.url) or '(no web link)'}" + (f"  [pages: {pages}]" if pages else ""))
    code = [link for link in hit.metadata.get("code_links") or [] if web_url(link)]
    if code:
        lines.append(f"    code: {', '.join(code)}")
    return terminal_text("\n".join(lines))


def _print_retrieval(result: Retrieval, as_json: bool) -> None:
    if as_json:
        print(json_text(result.to_dict(), indent=2))
    elif not result.hits:
        nothing = nothing_relevant(result.missing, result.covered, []).rstrip(".")
        say(
            f"{nothing} (for {result.query!r}, relevance {result.relevance:.2f}); "
            "use --no-gate to list the closest papers anyway."
        )
    else:
        say(f"{len(result.hits)} results for {result.query!r} ({result.mode}, {result.took_ms:.0f} ms)\n")
        say("\n\n".join(format_hit(h) for h in result.hits))


def read_queries(path: str) -> list[dict]:
    """Batch queries: JSONL lines with _id/id and text/question, optional history (earlier messages) or turns."""
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
        text = (
            record.get("text")
            or record.get("question")
            or record.get("query")
            or (turns[-1] if isinstance(turns, list) and turns else None)
        )
        history = record.get("history") or (turns[:-1] if isinstance(turns, list) else [])
        if not isinstance(text, str) or not text.strip():
            raise PaperchatError(f"{path}:{number}: no query text (expected a 'text' or 'question' field)")
        if isinstance(history, str):  # one earlier message
            history = [history]
        if not isinstance(history, list) or not all(isinstance(turn, str) for turn in history):
            raise PaperchatError(
                f"{path}:{number}: 'history' must be a list of earlier messages (or one message as a string)"
            )
        query_id = str(record.get("_id", record.get("id", record.get("query_id", number))))
        queries.append({"id": query_id, "text": text, "history": [str(h) for h in history]})
    return queries


def cmd_search(args: argparse.Namespace) -> int:
    if args.query is not None and not args.query.strip() and not args.queries:
        raise PaperchatError("the query is empty; type a question or some keywords")
    if (args.query is None) == (args.queries is None):
        raise PaperchatError("give either a QUERY or --queries FILE (see paperchat search --help)")
    if args.queries:
        if args.format in EXPORT_FORMATS:
            raise PaperchatError(f"--format {args.format} exports the hits of one query; a batch writes jsonl or trec")
        args.format = args.format or "jsonl"
        queries = read_queries(args.queries)
        where = Filter.of(_where(args))  # a bad filter is reported before any model loads
        out = _output(args.output)
        try:
            _search_batch(_open(args), queries, args, out, where)
        finally:
            if out is not sys.stdout:
                out.close()
        return 0
    where = Filter.of(_where(args))
    result = _open(args).retrieve(args.query, args.k, args.mode, gate=not args.no_gate, where=where)
    for notice in result.notices:
        say(f"paperchat: {notice}", err=True)
    if args.format in EXPORT_FORMATS:
        say(export(result.hits, args.format), end="")
    elif args.format:
        raise PaperchatError(f"--format {args.format} is for a batch (--queries FILE)")
    else:
        _print_retrieval(result, args.json)
    return 0


def _output(path: str | None):
    """Where batch output goes: stdout, or a file opened now, before any model loads."""
    if not path:
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise PaperchatError(f"cannot write {path} ({exc.strerror or exc})") from None


def _search_batch(
    assistant: Assistant, queries: list[dict], args: argparse.Namespace, out, where: Filter | None
) -> None:
    from tqdm.auto import tqdm

    for query in tqdm(queries, desc="searching", unit="query", disable=args.quiet, file=sys.stderr):
        result = assistant.retrieve(
            query["text"],
            args.k,
            args.mode,
            gate=not args.no_gate and args.format != "trec",
            history=query["history"],
            where=where,
        )
        if args.format == "trec":
            for hit in result.hits:
                out.write(terminal_text(f"{query['id']} Q0 {hit.id} {hit.rank} {hit.score:.6f} paperchat") + "\n")
        else:
            record = {
                "query_id": query["id"],
                "query": query["text"],
                "searched": [asdict(f) for f in result.formulations],
                "relevant": result.relevant,
                "relevance": result.relevance,
                "missing": result.missing,
                "took_ms": result.took_ms,
                "hits": [h.to_dict() for h in result.hits],
            }
            out.write(json_text(record) + "\n")


def cmd_ask(args: argparse.Namespace) -> int:
    where = Filter.of(_where(args))
    if args.session and args.history:
        raise PaperchatError("--session keeps the history itself; leave out --history")
    assistant = _open(args)
    write = False if args.no_llm else None
    conversation = (
        Conversation.load(assistant, args.session)
        if args.session
        else assistant.replay(args.history, args.k, args.mode)
    )
    changed = conversation.index_changed()
    if args.json:
        answer = conversation.ask(args.message, args.k, args.mode, where=where, write=write)
        record = {**answer.to_dict(), "filter": conversation.filter}  # in force after this turn ({}: none)
        if args.session:
            conversation.save(args.session)
            record.update(session=args.session, turn=len(conversation.turns), index_changed=changed)
        print(json_text(record, indent=2))
        return 0
    if changed:
        say(f"paperchat: {changed}", err=True)
    streamed = False
    for event in conversation.ask_stream(args.message, args.k, args.mode, where=where, write=write):
        if event.kind == "sources":
            say(filter_line(event.answer.where))
            if event.answer.rewritten:
                say(f"(searched: {describe_searched(event.answer.searched)})\n")
            if assistant.llm and event.answer.hits and not args.no_llm:  # the sources come before the first token
                say("Sources: " + "; ".join(f"[{h.rank}] {h.title}" for h in event.answer.hits) + "\n")
        elif event.kind == "token":
            say(event.token, end="")
            streamed = True
        else:
            answer = event.answer
    if args.session:
        conversation.save(args.session)
    if streamed:
        print("\n")
    for notice in answer.notices:
        say(f"paperchat: {notice}", err=True)
    if answer.written_by or answer.withheld:  # the streamed text above is the written answer, shown or withheld
        say(citation_check(answer.sentences) + "\n")
    if answer.table:
        say(answer.text + "\n")
    elif not answer.written_by:
        say(("Extractive answer instead:\n" if streamed else "") + textwrap.fill(answer.text, 100) + "\n")
    if args.evidence:
        say(evidence_lines(answer) + "\n")
    for hit in answer.hits:
        say(format_hit(hit) + "\n")
    return 0


def filter_line(where: Filter | None) -> str:
    """The first line of every chat answer: the filter in force, and how to remove it."""
    if where is None:
        return "Filter: none"
    return f"Filter: {where.describe()} (say \u201cclear the filters\u201d to remove it)"


def evidence_lines(answer) -> str:
    """Each sentence of the answer shown, then under it the quoted source sentence(s) that bear it out."""
    lines = ["Evidence:"] if answer.evidence else []
    for item in answer.evidence:
        lines.append(textwrap.fill(item.sentence, 100))
        for quote in item.quotes:
            where = f"[{quote.source}], sentence {quote.sentence + 1} of its abstract"
            if quote.text == item.sentence:  # an extractive answer quotes its sources
                lines.append(f"    > {where} (the sentence itself)")
                continue
            lines.append(
                textwrap.fill(
                    f"{where}: \u201c{quote.text}\u201d", 100, initial_indent="    > ", subsequent_indent="      "
                )
            )
        if not item.quotes:
            lines.append("    (no source sentence supports it)")
    return terminal_text("\n".join(lines))


def citation_check(sentences) -> str:
    """The citation check of a streamed answer as terminal lines: the count, then each unsupported sentence."""
    supported = sum(s.supported for s in sentences)
    lines = [f"Citation check: {supported} of {len(sentences)} sentences supported by the abstracts they cite."]
    for sentence in sentences:
        if not sentence.supported:
            cited = sentence.markers() or "no citation"
            hint = f"; it lacks {', '.join(sentence.unmatched[:3])}" if sentence.unmatched else ""
            hint += f"; [{sentence.best}] supports it" if sentence.best else ""
            lines.append(f"  not supported ({cited}{hint}): {textwrap.shorten(sentence.text, 90)}")
    return terminal_text("\n".join(lines))


def cmd_ingest(args: argparse.Namespace) -> int:
    for path in args.paths:
        if not Path(path).expanduser().exists():
            raise PaperchatError(f"{path}: no such file or folder")
    ingest_filter(args.category, args.since, args.until)  # a bad date is reported before any model loads
    if not args.paths and (args.format or args.category or args.since or args.until):
        raise PaperchatError("--format, --category, --since and --until apply to the files you ingest; name them")
    assistant = _open(args, bootstrap=False)
    load_report, ingest_report = assistant.ingest(
        args.paths or None,
        progress=not args.quiet,
        fmt=args.format,
        categories=args.category,
        since=args.since,
        until=args.until,
    )
    for problem in load_report.problems:
        say(f"paperchat: {'' if problem.repaired else 'skipped '}{problem}", err=True)
    say(f"{load_report.summary()}\n{ingest_report.summary()} ({assistant.location})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = _open(args, bootstrap=False, load_model=False, create=False).info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        say("\n".join(f"{key:>10}: {value}" for key, value in info.items()))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    assistant = _open(args, bootstrap=False, load_model=args.write, create=False)
    rows = assistant.compare(args.ids, args.aspect or None, write=args.write)
    print(table_text(rows, args.format), end="")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    assistant = _open(args, bootstrap=False, load_model=False, create=False)
    if args.action == "list":
        say(describe(assistant.watchlist.questions()))
    elif args.action == "add":
        if not args.what:
            raise PaperchatError('give the question to save: paperchat watch add "QUESTION"')
        say(describe(assistant.watch(args.what, **_where(args))))
    else:
        if not (args.what or "").isdigit():
            raise PaperchatError("give the number of the question to remove, as `paperchat watch list` shows it")
        say(f"removed: {assistant.unwatch(int(args.what)).question}")
    return 0


def cmd_digest(args: argparse.Namespace) -> int:
    assistant = _open(args, bootstrap=False, create=False)
    print(digest_text(assistant.digest(args.since, mark=not args.keep), args.format), end="")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    removed = _open(args, bootstrap=False, load_model=False, create=False).remove(args.ids)
    missing = sorted(set(args.ids) - set(removed))
    say(f"removed {len(removed)} paper(s)" + (f"; not in the index: {', '.join(missing)}" if missing else ""))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from paperchat.ui.app import check_port, launch

    auth = args.auth or os.environ.get("PAPERCHAT_AUTH")
    if args.share and not auth and not args.share_without_auth:
        raise PaperchatError(
            "--share publishes the whole index to anyone with the link: "
            "add --auth USER:PASSWORD (or say --share-without-auth)"
        )
    check_port(args.host, args.port)
    launch(_open(args), host=args.host, port=args.port, share=args.share, auth=auth)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except PaperchatError as exc:
        say(f"paperchat: error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        print("paperchat: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`paperchat search ... | head`): stop quietly, as Unix tools do
        os.dup2(
            os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno()
        )  # so that the interpreter's final flush cannot fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())
