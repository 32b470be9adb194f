"""Each built-in format: detection on raw rows, conversion to canonical rows, and the reasons for bad rows."""
import pytest

from alignkit.builtins.formats import FORMATS

F = {f.name: f for f in FORMATS}
USER = {"role": "user", "content": "Hi"}


def reason(fmt, row):
    with pytest.raises(ValueError) as info:
        F[fmt].convert(row)
    return str(info.value)


def test_each_format_detects_its_own_example_row_first_by_priority():
    rows = {
        "standard": {"prompt": "p", "chosen": "a", "rejected": "b"},
        "conversational": {"chosen": [USER, {"role": "assistant", "content": "a"}],
                           "rejected": [USER, {"role": "assistant", "content": "b"}]},
        "hh": {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"},
        "ultrafeedback": {"prompt": "Hi", "chosen": [USER, {"role": "assistant", "content": "a"}],
                          "rejected": [USER, {"role": "assistant", "content": "b"}],
                          "score_chosen": 5, "score_rejected": 1},
        "prompt": {"prompt": "p"},
    }
    by_priority = sorted(FORMATS, key=lambda f: -f.priority)
    for name, row in rows.items():
        assert next(f.name for f in by_priority if f.detect(row)) == name


def test_implicit_prompt_is_the_shared_messages_and_a_shared_assistant_turn_goes_back_to_the_responses():
    sys_msg = {"role": "system", "content": "Be brief."}
    a1 = {"role": "assistant", "content": "Hello"}
    row = {"chosen": [sys_msg, USER, a1, {"role": "assistant", "content": "x"}],
           "rejected": [sys_msg, USER, a1, {"role": "assistant", "content": "y"}]}
    out = F["conversational"].convert(row)
    assert out["prompt"] == [sys_msg, USER]
    assert out["chosen"] == [a1, {"role": "assistant", "content": "x"}]
    assert out["rejected"] == [a1, {"role": "assistant", "content": "y"}]


def test_hh_prompt_ends_at_the_last_shared_assistant_marker():
    row = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Ok?\n\nAssistant: Fine.",
           "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Ok?\n\nAssistant: Go away."}
    out = F["hh"].convert(row)
    assert out == {"prompt": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Ok?\n\nAssistant:",
                   "chosen": " Fine.", "rejected": " Go away."}


def test_ultrafeedback_keeps_scores_as_floats_and_splits_the_user_turn_off():
    row = {"prompt": "Hi", "chosen": [USER, {"role": "assistant", "content": "a"}],
           "rejected": [USER, {"role": "assistant", "content": "b"}], "score_chosen": 5, "score_rejected": 1}
    out = F["ultrafeedback"].convert(row)
    assert out["prompt"] == [USER] and out["chosen"] == [{"role": "assistant", "content": "a"}]
    assert (out["score_chosen"], out["score_rejected"]) == (5.0, 1.0)


def test_bad_rows_give_a_reason_and_a_detail():
    assert reason("standard", {"prompt": "p", "chosen": "a"}) == "missing field: 'rejected'"
    assert reason("standard", {"prompt": "p", "chosen": "a", "rejected": 3}) == \
        "wrong type: 'rejected' should be a string, got int"
    assert reason("conversational", {"chosen": [USER], "rejected": "x"}).startswith("wrong type: 'rejected'")
    assert reason("hh", {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"}) \
        .startswith("no shared prompt:")
    assert reason("prompt", {"prompt": 42}).startswith("wrong type: 'prompt'")
