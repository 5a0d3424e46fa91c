"""The chat as explicit state: filters only when asked, always visible and removable; pointers at shown papers;
session files. Pure rules first, then real conversations over the bundled index."""

import json

import pytest

from conftest import small_assistant, write
from paperchat.cli import main
from paperchat.conversation import Conversation
from paperchat.filters import Filter
from paperchat.index.errors import PaperchatError
from paperchat.intents import Pointer, apply_filter_request, read_filter_request, read_pointer
from paperchat.snippets import split_sentences

YEAR = 2026


@pytest.mark.parametrize(
    "message",
    [
        "extending the context window of LLMs from 2048 tokens to much longer inputs",
        "many-shot prompting with up to 2048 demonstrations",
        "pre-trained language models from 2018 like BERT: how are they adapted to source code?",
        "evaluating LLMs with code generation benchmarks",
        "training LLMs with code and natural language data",
        "finding vulnerabilities with code language models",
        "results on the ImageNet 2012 validation set",
        "papers written by GPT-4 detectors",
        "the transformer from 2017 and what came after it",
        "what about code?",
        "source code summarization",
    ],
)
def test_content_questions_with_filter_like_words_set_no_filter(message):
    request = read_filter_request(message, YEAR)
    assert not request.asked and request.rest == message


@pytest.mark.parametrize(
    "message, wanted",
    [
        ("only the ones since 2024", {"since": "2024"}),
        ("from 2023 on", {"since": "2023"}),
        ("2022 or later please", {"since": "2022"}),
        ("before 2024", {"until": "2023"}),
        ("anything before march 2024?", {"until": "2024-02"}),
        ("published after 2022", {"since": "2023"}),
        ("after june 2024", {"since": "2024-07"}),
        ("only 2023 papers", {"since": "2023", "until": "2023"}),
        ("between 2020 and 2022", {"since": "2020", "until": "2022"}),
        ("no later than 2024-02-29", {"until": "2024-02-29"}),
        ("just cs.CV", {"category": "cs.CV"}),
        ("stat.ml only", {"category": "stat.ML"}),
        ("show me papers that have released code", {"has_code": True}),
        ("only the ones whose code is available", {"has_code": True}),
        ("just the ones without code", {"has_code": False}),
        ("anything by Geoffrey Hinton?", {"author": "Geoffrey Hinton"}),
        ("only the ICML ones", {"venue": "ICML"}),
        ("only stuff from HF Daily Papers", {"source": "HF Daily Papers"}),
        ("source: HF Daily Papers", {"source": "HF Daily Papers"}),
        ("public code only please", {"has_code": True}),
        ("I need ones I can run myself, the repo must be public", {"has_code": True}),
        ("only the ones that did not publish code", {"has_code": False}),
        ("anything in or after may 2023", {"since": "2023-05"}),
        ("just the ones with Ada Lovelace as an author", {"author": "Ada Lovelace"}),
        ("w/ code pls", {"has_code": True}),
        ("post-2021 only", {"since": "2022"}),
        ("hide everything older than 2022", {"since": "2022"}),
        ("limit it to 2020 and 2021", {"since": "2020", "until": "2021"}),
        ("only Ada Lovelace's papers", {"author": "Ada Lovelace"}),
        ("just the ones whose code was open-sourced", {"has_code": True}),
    ],
)
def test_filter_requests_are_read_with_inclusive_bounds(message, wanted):
    request = read_filter_request(message, YEAR)
    assert request.set == wanted and request.only_filter and request.error is None


def test_a_year_is_a_year_only_when_plausible_and_a_bad_value_is_an_error_not_a_filter():
    assert not read_filter_request("scaling to 2048 tokens and beyond", YEAR).asked
    assert read_filter_request("only since 2030", YEAR).error.startswith("2030 is not a plausible year")
    assert read_filter_request("only since 2024-13", YEAR).error.startswith("2024-13 is not a date")
    assert read_filter_request("only since 2027", YEAR).set == {"since": "2027"}  # next year is plausible


def test_a_request_with_a_question_keeps_the_question():
    request = read_filter_request("any on LLM pruning with code?", YEAR)
    assert request.set == {"has_code": True} and not request.only_filter and "pruning" in request.rest


def test_filters_narrow_turn_by_turn_and_are_removed_by_field_or_all():
    current: dict = {}
    for message in ("only since 2023", "with code", "just cs.CL", "actually make that 2025", "no wait, 2024 not 2025"):
        current = apply_filter_request(current, read_filter_request(message, YEAR))
    assert current == {"since": "2024", "has_code": True, "category": "cs.CL"}
    assert apply_filter_request(current, read_filter_request("never mind the date", YEAR)) == {
        "has_code": True,
        "category": "cs.CL",
    }
    assert apply_filter_request(current, read_filter_request("remove the code requirement", YEAR)) == {
        "since": "2024",
        "category": "cs.CL",
    }
    assert apply_filter_request(current, read_filter_request("clear the filters", YEAR)) == {}
    same = read_filter_request("by the same authors", YEAR)
    assert same.same_authors == 1 and apply_filter_request({}, same, ["Ada Lovelace", "C. Babbage"]) == {
        "author": "Ada Lovelace"
    }
    assert read_filter_request("anything by the same group as [3]?", YEAR).same_authors == 3


@pytest.mark.parametrize(
    "message, pointer",
    [
        ("more like [2]", Pointer("more like", (2,))),
        ("show me more like the second one", Pointer("more like", (2,))),
        ("compare [1] and [3]", Pointer("compare", (1, 3))),
        ("compare [1], [2] and [4]", Pointer("compare", (1, 2, 4))),
        ("Compare 2, 3, and 5.", Pointer("compare", (2, 3, 5))),
        ("the second one", Pointer("about", (2,))),
        ("tell me more about [3]", Pointer("about", (3,))),
        ("how do [1]-style methods scale?", None),
        ("second-order optimisation for transformers", None),
    ],
)
def test_pointers_at_shown_papers(message, pointer):
    assert read_pointer(message) == pointer


@pytest.fixture
def chat(assistant):
    return assistant.chat()


def test_more_like_uses_the_paper_the_user_saw_under_the_filter_in_force(assistant, chat):
    chat.ask("pruning large language models", k=5)
    filtered = chat.ask("only the ones with code", k=5)
    assert filtered.where == Filter(has_code=True) and all(h.metadata["code_links"] for h in filtered.hits)
    seen = filtered.hits[0]
    similar = chat.ask("more like [1]", k=5)
    assert similar.query == f"more like: {seen.title}" and seen.id not in {h.id for h in similar.hits}
    assert similar.where == Filter(has_code=True) and all(h.metadata["code_links"] for h in similar.hits)
    assert chat.turns[-1].kind == "more like" and chat.shown == [h.id for h in similar.hits]
    compared = chat.ask("compare [1] and [3]", k=5)
    assert [h.id for h in compared.hits] == [similar.hits[0].id, similar.hits[2].id]
    assert [h.rank for h in compared.hits] == [1, 3] and compared.text.startswith(f"[1] {similar.hits[0].title}")
    assert [row.paper_id for row in compared.table] == [h.id for h in compared.hits] and "\n\n[3] " in compared.text
    assert compared.to_dict()["table"][0]["cells"][0]["aspect"] == "problem"
    with pytest.raises(PaperchatError, match=r"no \[9\]"):
        chat.ask("more like [9]")


def test_a_content_question_with_numbers_and_code_sets_no_filter(chat):
    answer = chat.ask("extending the context window of LLMs from 2048 tokens to much longer inputs")
    assert answer.where is None and chat.filter == {} and answer.hits
    assert any("LongEmbed" in h.title for h in answer.hits)
    assert chat.ask("evaluating LLMs with code generation benchmarks").where is None and chat.filter == {}


def test_a_date_filter_that_empties_the_result_is_explained_and_cleared(chat):
    chat.ask("parameter-efficient fine-tuning of large models", k=5)
    emptied = chat.ask("only the ones since 2024", k=5)
    assert not emptied.hits and chat.filter == {"since": "2024"}
    assert emptied.text.startswith("No paper in this index has a date, so \u201csince 2024\u201d matches none of the")
    assert "covers" not in emptied.text  # about the filter, not the corpus
    bad = chat.ask("only since 2024-13", k=5)
    assert bad.text.startswith("Filter not changed: 2024-13 is not a date") and chat.filter == {"since": "2024"}
    cleared = chat.ask("clear the filters", k=5)
    assert chat.filter == {} and cleared.where is None and cleared.hits
    assert any("parameter-efficient" in h.title.lower() for h in cleared.hits)


def test_a_filter_with_matches_but_none_relevant_names_what_is_outside(tmp_path, embedder):
    diffusion = [
        (
            "Consistency models for one-step diffusion sampling",
            "We distill a diffusion model into a consistency model "
            "that samples images in one step instead of hundreds of denoising steps.",
        ),
        (
            "Fast ODE solvers for diffusion probabilistic models",
            "A dedicated high-order ODE solver samples diffusion "
            "models in ten steps with image quality close to a thousand-step sampler.",
        ),
        (
            "Progressive distillation of diffusion samplers",
            "Halving the number of sampling steps of a diffusion model "
            "repeatedly by distillation gives fast image generation in four steps.",
        ),
    ]
    graphs = [
        (
            "Message passing networks for molecules",
            "Graph neural networks predict molecular properties by passing messages along chemical bonds.",
        ),
        ("Graph attention for citation networks", "Attention over neighbours classifies nodes of citation graphs."),
    ]
    rows = [
        {"id": f"p{number}", "title": title, "abstract": abstract, "date": date}
        for number, ((title, abstract), date) in enumerate(
            [*((paper, "2023-05-01") for paper in diffusion), *((paper, "2024-03-01") for paper in graphs)]
        )
    ]
    corpus = write(tmp_path / "papers.jsonl", "\n".join(json.dumps(row) for row in rows) + "\n")
    chat = small_assistant(tmp_path / "index", embedder, corpus).chat()
    assert chat.ask("diffusion model sampling steps", k=3).hits
    answer = chat.ask("only the ones since 2024", k=3)
    assert not answer.hits and chat.filter == {"since": "2024"}
    assert answer.text.startswith("2 papers match \u201csince 2024\u201d; none is about")
    assert "3 outside the filter are" in answer.text and "Consistency models" in answer.text


def test_a_session_file_is_created_extended_and_reports_a_changed_index(assistant, tmp_path, bundled_index):
    path = tmp_path / "chat.json"
    first = Conversation.load(assistant, path)
    first.ask("machine unlearning", k=3)
    first.ask("only the ones with code", k=3)
    first.save(path)
    record = json.loads(path.read_text())
    assert [t["kind"] for t in record["turns"]] == ["question", "filter"] and record["filter"] == {"has_code": True}
    again = Conversation.load(assistant, path)
    assert again.filter == {"has_code": True} and again.shown == record["turns"][-1]["hits"]
    assert again.index_changed() is None
    record["fingerprint"] = "another-index"
    path.write_text(json.dumps(record))
    assert "another state of the index" in Conversation.load(assistant, path).index_changed()
    path.write_text("{not json")
    with pytest.raises(PaperchatError, match="not a paperchat session file"):
        Conversation.load(assistant, path)


def test_paperchat_ask_keeps_a_session_and_shows_the_filter_first(bundled_index, tmp_path, capsys):
    session = tmp_path / "s.json"

    def ask(message):
        code = main(["ask", message, "--session", str(session), "-k", "3", "--index", str(bundled_index)])
        captured = capsys.readouterr()
        assert code == 0 and "Traceback" not in captured.err, captured.err
        return captured.out.splitlines()

    assert ask("detecting LLM-generated text")[0] == "Filter: none"
    assert ask("only the ones with code")[0].startswith("Filter: has_code=True")
    assert ask("clear the filters")[0] == "Filter: none"
    turns = json.loads(session.read_text())["turns"]
    assert [t["message"] for t in turns] == [
        "detecting LLM-generated text",
        "only the ones with code",
        "clear the filters",
    ]
    assert main(["ask", "x", "--session", str(session), "--history", "y", "--index", str(bundled_index)]) == 2
    assert "leave out --history" in capsys.readouterr().err


def test_every_sentence_of_an_answer_carries_the_source_sentence_that_bears_it_out(bundled_index, capsys):
    code = main(["ask", "detecting LLM-generated text", "-k", "3", "--json", "--index", str(bundled_index)])
    answer = json.loads(capsys.readouterr().out)
    assert code == 0 and len(answer["evidence"]) == 3
    abstracts = {hit["rank"]: hit["abstract"] for hit in answer["hits"]}
    for item in answer["evidence"]:
        (quote,) = item["quotes"]
        assert split_sentences(abstracts[quote["source"]])[quote["sentence"]] == quote["text"] == item["sentence"]
        assert f"{item['sentence']} [{quote['source']}]" in answer["answer"]
    assert main(["ask", "detecting LLM-generated text", "-k", "3", "--evidence", "--index", str(bundled_index)]) == 0
    shown = capsys.readouterr().out
    first = answer["evidence"][0]["quotes"][0]
    assert "Evidence:" in shown and f"> [{first['source']}], sentence {first['sentence'] + 1} of its abstract" in shown
