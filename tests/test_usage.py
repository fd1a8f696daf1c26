"""Usage that says the same thing in another shape gives the same columns, and every usage any
shape's parser can produce keeps the contract's containment: reasoning within output, cache
reads and writes within input."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usage_ledger.apis import anthropic_messages, gemini, openai_chat, openai_responses
from usage_ledger.framing import Frame
from usage_ledger.records import USAGE_COLUMNS, CallFinished, usage_columns
from usage_ledger.usage import Usage, merge_report


def columns(usage: Usage | None) -> tuple:
    """The six token columns the row gets (usage_json left out)."""
    values = usage_columns(usage)
    return tuple(values[c] for c in USAGE_COLUMNS)


def test_usage_columns_are_the_rows_usage_columns() -> None:
    usage = Usage(input_tokens=120, cached_input_tokens=100, cache_write_tokens=None, output_tokens=7,
                  reasoning_tokens=3, total_tokens=127, raw={"prompt_tokens": 120, "completion_tokens": 7})
    assert usage_columns(usage) == {
        "input_tokens": 120, "cached_input_tokens": 100, "cache_write_tokens": None, "output_tokens": 7,
        "reasoning_tokens": 3, "total_tokens": 127, "usage_json": '{"prompt_tokens":120,"completion_tokens":7}'}
    assert usage_columns(None) == dict.fromkeys(usage_columns(usage))  # no usage: all NULL
    fields = CallFinished._fields  # one contiguous run of the row's columns, in their order
    start = fields.index("input_tokens")
    assert fields[start:start + 7] == tuple(usage_columns(None))


def chat_stream(*chunks: dict) -> tuple:
    tracker = openai_chat.ChatTracker("m")
    for chunk in chunks:
        tracker.on_frame(Frame(json.dumps(chunk).encode()))
    return columns(tracker.usage())


def test_xai_reasoning_outside_completion_tokens_is_added_to_output():
    usage = {"prompt_tokens": 32, "completion_tokens": 9, "total_tokens": 135,
             "completion_tokens_details": {"reasoning_tokens": 94}}
    assert columns(openai_chat.usage_from_openai(usage)) == (32, None, None, 103, 94, 135)


def test_reasoning_outside_output_by_the_total_even_when_smaller():
    """Gemini's OpenAI-compatible endpoint: completion_tokens excludes thoughts, total has them."""
    usage = {"prompt_tokens": 10, "completion_tokens": 50, "total_tokens": 80,
             "completion_tokens_details": {"reasoning_tokens": 20}}
    assert columns(openai_chat.usage_from_openai(usage)) == (10, None, None, 70, 20, 80)


def test_openai_reasoning_inside_completion_tokens_stays():
    usage = {"prompt_tokens": 10, "completion_tokens": 50, "total_tokens": 60,
             "completion_tokens_details": {"reasoning_tokens": 20}}
    assert columns(openai_chat.usage_from_openai(usage)) == (10, None, None, 50, 20, 60)


def test_moonshot_usage_inside_the_finish_choice():
    finish = {"id": "c", "model": "kimi-k2", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop",
              "usage": {"prompt_tokens": 19, "completion_tokens": 13, "total_tokens": 32}}]}
    assert chat_stream({"model": "kimi-k2", "choices": [{"delta": {"content": "hi"}}]}, finish) == (
        19, None, None, 13, None, 32)


def test_chat_usage_with_responses_names():
    assert columns(openai_chat.usage_from_openai({"input_tokens": 11, "output_tokens": 5, "total_tokens": 16})) == (
        11, None, None, 5, None, 16)


def test_other_names_for_cache_reads_and_writes():
    deepseek = {"prompt_tokens": 100, "completion_tokens": 5, "prompt_cache_hit_tokens": 64,
                "prompt_cache_miss_tokens": 36}
    assert columns(openai_chat.usage_from_openai(deepseek))[:2] == (100, 64)
    moonshot = {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105, "cached_tokens": 80}
    assert columns(openai_chat.usage_from_openai(moonshot))[:2] == (100, 80)
    null_details = {"prompt_tokens": 9, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": None}}
    assert columns(openai_chat.usage_from_openai(null_details))[:2] == (9, None)
    litellm = {"prompt_tokens": 1200, "completion_tokens": 10, "total_tokens": 1210,
               "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 150}
    assert columns(openai_chat.usage_from_openai(litellm))[:4] == (1200, 1000, 150, 10)


def test_cache_counted_outside_the_prompt_is_added_to_input():
    """A server echoing Anthropic's convention in OpenAI's shape: the total shows it."""
    usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 1230,
             "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 200}}
    assert columns(openai_chat.usage_from_openai(usage)) == (1220, 1000, 200, 10, None, 1230)
    no_total = {"prompt_tokens": 20, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 1000}}
    assert columns(openai_chat.usage_from_openai(no_total))[:2] == (1020, 1000)


def test_perplexity_top_level_reasoning():
    usage = {"prompt_tokens": 9, "completion_tokens": 120, "total_tokens": 129, "reasoning_tokens": 40,
             "citation_tokens": 300, "num_search_queries": 1}
    assert columns(openai_chat.usage_from_openai(usage)) == (9, None, None, 120, 40, 129)


def test_llama_cpp_timings_when_no_usage():
    last = {"model": "qwen", "choices": [{"delta": {}, "finish_reason": "stop"}],
            "timings": {"cache_n": 4, "prompt_n": 12, "predicted_n": 30, "predicted_ms": 700.0}}
    assert chat_stream(last) == (16, 4, None, 30, None, 46)
    with_usage = {**last, "usage": {"prompt_tokens": 16, "completion_tokens": 30, "total_tokens": 46}}
    assert chat_stream(with_usage) == (16, None, None, 30, None, 46)


def test_groq_x_groq_then_a_standard_usage_chunk():
    groq = {"model": "llama", "choices": [{"delta": {}, "finish_reason": "stop"}],
            "x_groq": {"usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}}
    plain = {"model": "llama", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
    assert chat_stream(groq, plain) == chat_stream(groq) == (7, None, None, 3, None, 10)


def test_a_zero_after_a_nonzero_report_keeps_the_count():
    first = {"model": "m", "choices": [], "usage": {"prompt_tokens": 15, "completion_tokens": 2}}
    last = {"model": "m", "choices": [], "usage": {"prompt_tokens": 0, "completion_tokens": 42}}
    assert chat_stream(first, last)[:4] == (15, None, None, 42)


def anthropic_stream(*events: dict) -> tuple:
    tracker = anthropic_messages.MessagesTracker("claude")
    for event in events:
        tracker.on_frame(Frame(json.dumps(event).encode(), event=event["type"]))
    return columns(tracker.usage())


def test_anthropic_compatible_final_delta_with_zero_input():
    start = {"type": "message_start", "message": {"model": "glm-4.6", "usage": {"input_tokens": 15, "output_tokens": 1}}}
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
             "usage": {"input_tokens": 0, "output_tokens": 42, "cache_read_input_tokens": 0}}
    assert anthropic_stream(start, delta) == (15, 0, None, 42, None, 57)


def test_anthropic_final_delta_that_grows_input_still_wins():
    start = {"type": "message_start", "message": {"model": "c", "usage": {"input_tokens": 10, "output_tokens": 1}}}
    delta = {"type": "message_delta", "usage": {"input_tokens": 2039, "output_tokens": 300}}
    assert anthropic_stream(start, delta)[:4] == (2039, None, None, 300)


def test_anthropic_cache_write_from_its_ttl_breakdown():
    start = {"type": "message_start", "message": {"model": "c", "usage": {
        "input_tokens": 5, "output_tokens": 1,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 50}}}}
    assert anthropic_stream(start)[:3] == (155, None, 150)


def test_gemini_count_missing_from_the_last_chunk_keeps_its_earlier_value():
    tracker = gemini.GeminiTracker("gemini-2.5-flash")
    tracker.on_body({"usageMetadata": {"promptTokenCount": 10, "thoughtsTokenCount": 30, "candidatesTokenCount": 2}})
    tracker.on_body({"usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 12, "totalTokenCount": 52}})
    assert columns(tracker.usage()) == (10, None, None, 42, 30, 52)


def test_merge_report_never_adds_and_never_forgets():
    assert merge_report({"a": 3, "b": {"c": 5}}, {"a": 0, "b": {"c": 7}, "d": None}) == {"a": 3, "b": {"c": 7}}
    assert merge_report({"a": 3}, {"a": 4}) == {"a": 4}
    assert merge_report(None, {"a": 0}) == {"a": 0}


# --- the invariants, for any counts any shape reports ---------------------------------------------

counts = st.one_of(st.none(), st.integers(0, 5000), st.sampled_from([-1, 2.5, float("inf"), True, "12"]))
relaxed = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)


def holds(usage: Usage | None) -> bool:
    """The invariants as SQL reads them: a whole not reported (NULL) bounds nothing."""
    if usage is None:
        return True
    if usage.output_tokens is not None and (usage.reasoning_tokens or 0) > usage.output_tokens:
        return False
    cache = (usage.cached_input_tokens or 0) + (usage.cache_write_tokens or 0)
    return usage.input_tokens is None or cache <= usage.input_tokens


def objects(keys: tuple[str, ...]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional={k: counts for k in keys})


openai_usage = st.fixed_dictionaries({}, optional={
    "prompt_tokens": counts, "completion_tokens": counts, "total_tokens": counts, "input_tokens": counts,
    "output_tokens": counts, "prompt_cache_hit_tokens": counts, "cached_tokens": counts, "reasoning_tokens": counts,
    "cache_read_input_tokens": counts, "cache_creation_input_tokens": counts,
    "prompt_tokens_details": objects(("cached_tokens", "cache_write_tokens")),
    "completion_tokens_details": objects(("reasoning_tokens",)),
    "input_tokens_details": objects(("cached_tokens", "cache_write_tokens")),
    "output_tokens_details": objects(("reasoning_tokens",)),
    "timings": objects(("prompt_n", "predicted_n", "cache_n")),
})


@relaxed
@given(openai_usage)
def test_openai_usage_of_any_shape_keeps_the_invariants(raw):
    assert holds(openai_chat.usage_from_openai(raw))
    assert holds(openai_responses.ResponsesTracker().normalise(raw))


@relaxed
@given(st.lists(objects(("input_tokens", "output_tokens", "cache_read_input_tokens",
                         "cache_creation_input_tokens")), min_size=1, max_size=4))
def test_anthropic_usage_of_any_shape_keeps_the_invariants(reports):
    tracker = anthropic_messages.MessagesTracker()
    tracker.on_body({"type": "message", "usage": reports[0]})
    for report in reports[1:]:
        tracker.on_body({"type": "message_delta", "usage": report})
    assert holds(tracker.usage())


@relaxed
@given(st.lists(objects(("promptTokenCount", "cachedContentTokenCount", "candidatesTokenCount",
                         "thoughtsTokenCount", "totalTokenCount", "toolUsePromptTokenCount")), min_size=1, max_size=4))
def test_gemini_usage_of_any_shape_keeps_the_invariants(reports):
    tracker = gemini.GeminiTracker()
    for report in reports:
        tracker.on_body({"usageMetadata": report})
    assert holds(tracker.usage())


def test_a_part_is_moved_outside_its_whole_at_most_once():
    """Reasoning 8 > completion 5 must be outside it (output 13); the total 31 fits no reading of
    the report, but it would fit 10 + 13 + 8, which is not what the server sent: not 21."""
    usage = openai_chat.usage_from_openai({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 31,
                                           "completion_tokens_details": {"reasoning_tokens": 8}})
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens, usage.total_tokens) == (10, 13, 8, 31)


small = st.one_of(st.none(), st.integers(0, 60))


@given(small, small, small, small, small, small, st.booleans())
def test_settling_moves_each_part_at_most_once(tokens_in, cached, written, tokens_out, reasoning, total, by_total):
    usage = Usage(tokens_in, cached, written, tokens_out, reasoning, total, by_total=by_total)
    assert holds(usage)
    if tokens_out is not None:
        assert tokens_out <= usage.output_tokens <= tokens_out + (reasoning or 0)
    if tokens_in is not None:
        assert tokens_in <= usage.input_tokens <= tokens_in + (cached or 0) + (written or 0)
    if by_total and None not in (tokens_in, tokens_out, total):
        fits = {tokens_in + tokens_out + (reasoning or 0) * r + ((cached or 0) + (written or 0)) * c
                for r in (0, 1) for c in (0, 1)
                if (r or (reasoning or 0) <= tokens_out) and (c or (cached or 0) + (written or 0) <= tokens_in)}
        if total in fits:  # a reading of the report adds up to the total: the row adds up too
            assert usage.input_tokens + usage.output_tokens == total


def test_a_count_no_call_can_have_is_read_as_not_reported():
    """1e19 or 10**30 tokens (a broken server) would not fit the ledger's 64-bit columns: such a
    count is left out, as a negative one is, and the other counts stay."""
    for huge in (1e19, 10 ** 30, 2 ** 53 + 1):
        usage = openai_chat.usage_from_openai({"prompt_tokens": huge, "completion_tokens": 7, "total_tokens": huge})
        assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (None, 7, None), huge
    assert openai_chat.usage_from_openai({"prompt_tokens": 2 ** 53, "completion_tokens": 1}).input_tokens == 2 ** 53


def test_an_empty_top_level_usage_does_not_hide_the_one_in_the_choices():
    body = {"usage": {}, "choices": [{"usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}}]}
    tracker = openai_chat.ChatTracker("kimi-k2")
    tracker.on_body(body)
    usage = tracker.usage()
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (9, 9, 18)
    alone = openai_chat.ChatTracker("gpt-4o")
    alone.on_body({"usage": {}})
    assert alone.raw_usage == {}  # reported, and empty: the row keeps it as it came
