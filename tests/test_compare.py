"""Comparison tables: cells quoted from each abstract (or not stated), in every format, from the API, the command
line and the chat."""

import csv
import io
import json

import pytest
from endpoints import Endpoint, with_llm

from paperchat.cli import main
from paperchat.compare import DEFAULT_ASPECTS, compare_row, default_cells, read_drafts, table_text, with_drafts
from paperchat.index.errors import PaperchatError
from paperchat.llm import CELL_INSTRUCTIONS
from paperchat.snippets import split_sentences

ABSTRACT = (
    "Large language models are widely used. "
    "However, fine-tuning them is prohibitively expensive for most labs. "
    "We propose TinyTune, a method that trains 0.1% of the weights. "
    "Experiments on GLUE and SQuAD show that TinyTune matches full fine-tuning while using 10x less memory. "
    "Our code is available at https://github.com/example/tinytune."
)


def test_each_default_aspect_is_read_from_the_cues_authors_state_it_with():
    cells = default_cells("TinyTune: cheap fine-tuning", split_sentences(ABSTRACT))
    assert cells == {"problem": 1, "approach": 2, "data": 3, "result": 3, "code": 4}
    silent = default_cells("A theory", split_sentences("We propose a theory of everything. It is elegant."))
    assert silent["code"] == -1 and silent["data"] == -1  # not stated: no cell is filled for the sake of it


def test_a_table_in_every_format_quotes_the_abstract_and_reads_back():
    rows = [
        compare_row("tiny", "TinyTune | cheap", ABSTRACT, [*DEFAULT_ASPECTS, "memory use"]),
        compare_row("empty", "Nothing", "", ["problem", "memory use"]),
    ]
    assert rows[0].cells[-1].text == split_sentences(ABSTRACT)[3]  # a custom aspect: the sentence sharing its words
    assert [c.stated for c in rows[1].cells] == [False, False]
    listed = list(csv.reader(io.StringIO(table_text(rows, "csv"))))
    assert listed[0][:3] == ["id", "title", "problem"] and listed[1][2] == split_sentences(ABSTRACT)[1]
    assert json.loads(table_text(rows, "json"))["rows"][0]["cells"][1]["sentence"] == 2
    markdown = table_text(rows, "markdown", [1, 3])
    assert "\\[3\\] Nothing" in markdown and "TinyTune \\| cheap" in markdown and "*not stated*" in markdown
    assert table_text(rows, "text").startswith("[1] TinyTune | cheap\n  problem: \u201cHowever")
    with pytest.raises(PaperchatError, match="unknown table format"):
        table_text(rows, "xlsx")


def test_paperchat_compare_quotes_each_paper_and_names_a_missing_one(bundled_index, assistant, capsys):
    ids = [h.id for h in assistant.search("detecting LLM-generated text", k=3)]
    assert main(["compare", *ids, "--format", "json", "--index", str(bundled_index)]) == 0
    table = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in table["rows"]] == ids and table["aspects"] == list(DEFAULT_ASPECTS)
    papers = assistant.store.snapshot().papers(ids)
    for row in table["rows"]:
        sentences = split_sentences(papers[row["id"]].abstract)
        assert all(c["text"] == sentences[c["sentence"]] for c in row["cells"] if c["sentence"] >= 0)
    assert main(["compare", ids[0], "--aspect", "compute cost", "--index", str(bundled_index)]) == 0
    assert "compute cost:" in capsys.readouterr().out
    assert main(["compare", ids[0], "no-such-paper", "--index", str(bundled_index)]) == 2
    assert "no paper with id 'no-such-paper'" in capsys.readouterr().err


def test_a_models_wording_of_each_aspect_is_read_whatever_its_list_marks():
    reply = (
        "**Problem:** Fine-tuning costs too much.\n"
        "- approach: trains few weights\n"
        "3. Data or benchmarks: not stated\n"
        "main result: N/A\n"
        "Notes: ignored\n"
        "Approach: a second wording is ignored\n"
    )
    assert read_drafts(reply, DEFAULT_ASPECTS) == {
        "problem": "Fine-tuning costs too much.",
        "approach": "trains few weights",
    }
    assert read_drafts("compute cost: 3 GPU hours", ["compute cost"]) == {"compute cost": "3 GPU hours"}


def test_a_wording_the_abstract_bears_out_replaces_the_quote_and_one_it_does_not_is_never_the_cell():
    row = compare_row("tiny", "TinyTune", ABSTRACT)
    drafts = {"problem": "Fine-tuning is too costly.", "approach": "It uses quantum annealing."}
    worded = with_drafts(row, drafts, {"problem": 1})
    problem, approach = worded.cells[:2]
    assert problem.written and (problem.text, problem.sentence) == ("Fine-tuning is too costly.", 1)
    assert not approach.written and (approach.text, approach.sentence) == (row.cells[1].text, row.cells[1].sentence)
    assert approach.unsupported == "It uses quantum annealing." and worded.cells[2:] == row.cells[2:]
    assert "NOT borne out by the abstract: It uses quantum annealing." in table_text([worded], "text")
    assert "*model, not borne out:* It uses quantum annealing" in table_text([worded], "markdown")
    assert "quantum" not in table_text([worded], "csv")  # a table's cells hold only what the abstract bears out


def test_an_llm_words_the_cells_and_each_wording_is_checked_against_its_abstract(assistant, capsys):
    """A scripted endpoint says one true thing (an abstract sentence, reworded only by its case), one invented
    thing, and "not stated": the first becomes the cell with that sentence as its evidence, the second is marked."""
    ids = [h.id for h in assistant.search("detecting LLM-generated text", k=1)]
    abstract = assistant.store.snapshot().papers(ids)[ids[0]].abstract
    sentences = split_sentences(abstract)
    true = sentences[-1]
    invented = "The method runs on quantum annealing hardware built from trapped ions in orbit."
    reply = f"problem: {true.lower()}\napproach: {invented}\ndata or benchmarks: not stated\n"
    endpoint = Endpoint("ok", pieces=(reply,))
    try:
        row = with_llm(assistant, endpoint.url).compare(ids, write=True)[0]
        _, _, request = endpoint.requests[-1]
    finally:
        endpoint.close()
    quoted = assistant.compare(ids)[0]
    assert request["messages"][0]["content"] == CELL_INSTRUCTIONS and sentences[0] in request["messages"][1]["content"]
    problem, approach, data = row.cells[:3]
    assert problem.written and problem.text == true.lower() and problem.sentence == len(sentences) - 1
    assert not approach.written and approach.unsupported == invented and approach.text == quoted.cells[1].text
    assert data == quoted.cells[2] and row.cells[3:] == quoted.cells[3:]
    with pytest.raises(PaperchatError, match="no LLM is configured"):
        assistant.compare(ids, write=True)


def test_the_rules_keep_their_held_out_figures_on_the_blind_sets():
    """eval/README.md, issue 24: the test half of blind_aspects5, scored once with the rules as they stand (0.806
    quoted right, 0.889 "not stated" right), and those of the third and fourth sets, scored once with earlier rules
    and since used as floors (0.807 / 0.800, 0.869 / 0.719); a change to the rules that loses any fails here."""
    from paperchat.eval.aspects import figures, load_aspects
    from paperchat.index.loaders import load_bundled

    papers = {p.id: p for p in load_bundled()[0]}
    floors = {"blind_aspects3": (0.807, 0.8), "blind_aspects4": (0.869, 0.719), "blind_aspects5": (0.806, 0.889)}
    for name, (quoted, empty) in floors.items():
        table = figures(papers, load_aspects(name, "test"))["all"]
        assert table["quoted_share"] >= quoted and table["empty_share"] >= empty, (name, table)
