"""One reader for a chat completion's body, whichever way it came (real-time, streamed, a batch line)."""

from __future__ import annotations

import pytest

from report_pipeline.providers.openai.answers import ChatAnswer, NotAnAnswer, read_body


def _body(message: dict, finish_reason: str = "stop", **extra) -> dict:
    return {"model": "m", "choices": [{"message": message, "finish_reason": finish_reason}], **extra}


def test_a_usual_answer_reads_its_text_model_usage_and_finish_reason() -> None:
    body = _body({"content": "Hello"}, usage={"prompt_tokens": 3, "completion_tokens": "2"})
    assert read_body(body) == ChatAnswer("Hello", "m", 3, 2, "stop")


def test_missing_usage_is_none_not_zero_so_the_caller_estimates_it() -> None:
    answer = read_body(_body({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}))
    assert (answer.text, answer.prompt_tokens, answer.completion_tokens) == ("ab", None, None)


def test_a_cut_answer_is_an_answer_that_says_so() -> None:
    assert read_body(_body({"content": "Half a"}, "length")).cut


@pytest.mark.parametrize(("body", "kind", "words"), [
    (_body({"content": ""}), "no_text", "the model returned an empty answer (finish_reason stop)"),
    (_body({"content": "  \n"}), "no_text", "empty answer"),
    (_body({"content": None, "refusal": "I can't help with that."}), "no_text", "the model refused: I can't help with that."),
    (_body({"content": None}, "content_filter"), "no_text", "blocked by the content filter"),
    (_body({"content": None, "tool_calls": [{"id": "x"}]}, "tool_calls"), "no_text", "call a tool"),
    (_body({"content": "", "reasoning_content": "hmm"}, "length"), "no_text", "reasoning used up max_tokens=50"),
    (_body({"content": None}, "length"), "no_text", "max_tokens=50 ran out before any text"),
    ({"choices": []}, "no_choices", "no choices"),
    ({"error": {"message": "upstream overloaded", "code": 502}}, "error", "upstream overloaded"),
    ({"choices": [{"text": "completion-style"}]}, "malformed", "not the JSON expected"),
    (["not", "an", "object"], "malformed", "not the JSON expected"),
])
def test_a_body_without_text_is_not_an_answer_and_says_why(body: object, kind: str, words: str) -> None:
    with pytest.raises(NotAnAnswer) as caught:
        read_body(body, max_tokens=50)
    assert caught.value.kind == kind and words in caught.value.message
