"""alignkit.data.tokenize against TRL 1.16's DPOTrainer, on five template families and a plain BOS tokenizer.

Each tokenizer is a byte-level BPE trained here (tests/real/chat_families.py) with the family's special tokens,
BOS post-processor and chat template; the real lane repeats these checks on SmolLM2's own 49k vocabulary
(tests/real/test_templates_real.py). TRL's ids come from TRL's own `_prepare_dataset` (tests/real/tokenize_checks.py).
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "real"))  # the family builder and the TRL checks

from chat_families import FAMILIES, build, trained_bpe
from tokenize_checks import conversational_rows, mismatches, plain_rows, prompt_mismatches

from alignkit.data.tokenize import divergence_warning, encode_example, encode_examples, encode_prompt, end_of_turn_ids
from alignkit.errors import UserError

# Templates that close the assistant turn with a special token: there alignkit's ids are TRL's exactly
CHAT = [name for name, family in FAMILIES.items() if family.template and family.turn_end]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    base = trained_bpe()
    return {name: build(base, family, tmp_path_factory.mktemp(name)) for name, family in FAMILIES.items()}


def chat_rows(name):
    return conversational_rows(system=FAMILIES[name].system)


# ---- the same ids as TRL


@pytest.mark.parametrize("name", CHAT)
def test_conversational_ids_are_trls(name, tokenizers):
    pytest.importorskip("trl")
    assert mismatches(tokenizers[name], chat_rows(name)) == []


@pytest.mark.parametrize("name", list(FAMILIES))
def test_plain_text_ids_are_trls(name, tokenizers):
    pytest.importorskip("trl")
    tokenizer = tokenizers[name]
    assert mismatches(tokenizer, plain_rows(tokenizer.eos_token)) == []


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_sampling_prompt_is_the_training_prompt(name, tokenizers):
    """What decode samples from is what prepare trains on; where the common-prefix rule cut the training prompt,
    the sampled prompt has exactly the cut tail more, and `diverged` names it."""
    tokenizer = tokenizers[name]
    rows = plain_rows(tokenizer.eos_token) + (chat_rows(name) if FAMILIES[name].template else [])
    assert prompt_mismatches(tokenizer, rows) == []


# ---- what each family's ids are, written out (independent of TRL)

# (family, row) -> (the prompt's last tokens, the chosen response) as text; row "chat" is the first
# conversational row ("What colour is the sky?" -> "Blue."), "plain" the first plain one ("The sky is" -> " blue.")
EXPECTED = {
    ("chatml", "chat"): ("?<|im_end|>\n<|im_start|>assistant\n", "Blue.<|im_end|>\n"),
    ("llama3", "chat"): ("?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "Blue.<|eot_id|>"),
    ("mistral", "chat"): ("sky? [/INST]", "Blue.</s>"),
    ("gemma", "chat"): ("?<end_of_turn>\n<start_of_turn>model\n", "Blue.<end_of_turn>\n"),
    ("chatml", "plain"): ("The sky is", " blue.<|endoftext|>"),
    ("llama3", "plain"): ("<|begin_of_text|>The sky is", " blue.<|eot_id|>"),
    ("mistral", "plain"): ("<s>The sky is", " blue.</s>"),
    ("gemma", "plain"): ("<bos>The sky is", " blue.<eos>"),
    ("plain-bos", "plain"): ("<s>The sky is", " blue.</s>"),
}


@pytest.mark.parametrize("name,kind", list(EXPECTED))
def test_each_familys_prompt_end_and_response(name, kind, tokenizers):
    tokenizer = tokenizers[name]
    row = chat_rows(name)[0] if kind == "chat" else plain_rows(tokenizer.eos_token)[0]
    example = encode_example(tokenizer, row["prompt"], [row["chosen"], row["rejected"]])
    prompt_end, chosen = EXPECTED[name, kind]
    assert tokenizer.decode(example.prompt_ids).endswith(prompt_end)
    assert tokenizer.decode(example.response_ids[0]) == chosen
    assert example.diverged is None and example.chat is (kind == "chat")
    bos = tokenizer.bos_token_id
    if bos is not None:  # BOS once: the template writes it for chat rows, the post-processor for plain text
        assert example.prompt_ids[0] == bos and example.prompt_ids.count(bos) == 1
    eos = tokenizer.eos_token_id
    # chat: the template's turn end closes the response, no EOS added; plain text: exactly one EOS, at the end
    expected_eos = 1 if kind == "plain" or FAMILIES[name].turn_end == tokenizer.eos_token else 0
    assert example.response_ids[0].count(eos) == expected_eos


def test_templates_that_trim_contents_trim_responses(tokenizers):
    row = chat_rows("gemma")[-1]  # "  Yes.  " / "No.\n"
    for name, chosen in (("gemma", "Yes.<end_of_turn>\n"), ("llama3", "Yes.<|eot_id|>"),
                         ("chatml", "  Yes.  <|im_end|>\n")):
        example = encode_example(tokenizers[name], row["prompt"], [row["chosen"], row["rejected"]])
        assert tokenizers[name].decode(example.response_ids[0]) == chosen


@pytest.mark.parametrize("name", list(FAMILIES))
def test_end_of_turn_ids_find_the_token_closing_an_assistant_turn(name, tokenizers):
    tokenizer, family = tokenizers[name], FAMILIES[name]
    expected = {tokenizer.convert_tokens_to_ids(family.turn_end)} if family.turn_end else set()
    assert end_of_turn_ids(tokenizer) == expected


# ---- the common-prefix rule and its warning


def test_a_template_that_renders_the_prompt_differently_alone_names_the_cut_text(tokenizers):
    tokenizer = tokenizers["diverging"]
    row = chat_rows("diverging")[0]
    example = encode_example(tokenizer, row["prompt"], [row["chosen"], row["rejected"]])
    assert example.diverged == "<think>\n\n</think>\n\n"
    assert tokenizer.decode(example.prompt_ids).endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(example.response_ids[0]) == "Blue.<|im_end|>\n"
    assert tokenizer.decode(encode_prompt(tokenizer, row["prompt"])).endswith("<think>\n\n</think>\n\n")
    warning = divergence_warning(example)
    assert "renders the prompt differently" in warning and repr(example.diverged) in warning


def test_a_prompt_ending_in_a_space_loses_it_to_the_response(tokenizers):
    tokenizer = tokenizers["chatml"]
    row = plain_rows(tokenizer.eos_token)[1]  # "Q: 2+2? A: " -> "4": " 4" is one token of this vocabulary
    example = encode_example(tokenizer, row["prompt"], [row["chosen"], row["rejected"]])
    assert example.diverged == " " and tokenizer.decode(example.prompt_ids) == "Q: 2+2? A:"
    assert tokenizer.decode(example.response_ids[0]) == " 4<|endoftext|>"
    assert "merge with the response" in divergence_warning(example)


def test_a_template_without_a_turn_end_token_gets_eos_where_trl_adds_none(tokenizers, capsys, monkeypatch):
    """alignkit's one departure from TRL: a response rendered as "4.\n" with nothing special after it would never
    teach the model to stop, so it ends with EOS (one warning); everything else is TRL's."""
    pytest.importorskip("trl")
    from tokenize_checks import alignkit_tokenized, trl_tokenized

    from alignkit.data import tokenize

    monkeypatch.setattr(tokenize, "warn_once", tokenize._Once().warn)  # said once per process: maybe said already
    tokenizer = tokenizers["newline-turns"]
    rows = chat_rows("newline-turns")
    assert end_of_turn_ids(tokenizer) == set()
    ours, theirs = alignkit_tokenized(tokenizer, rows), trl_tokenized(tokenizer, rows)
    eos = tokenizer.eos_token_id
    for mine, trl in zip(ours, theirs):
        assert mine["prompt_ids"] == trl["prompt_ids"]
        assert mine["chosen_ids"] == trl["chosen_ids"] + [eos] and mine["rejected_ids"] == trl["rejected_ids"] + [eos]
    assert tokenizer.decode(ours[0]["chosen_ids"]) == "Blue.\n<|endoftext|>"
    assert "closes the assistant turn with no special token" in capsys.readouterr().err


# ---- errors and the batched path


def test_conversational_rows_need_a_chat_template(tokenizers):
    tokenizer = tokenizers["plain-bos"]
    row = chat_rows("plain-bos")[0]
    for call in (lambda: encode_example(tokenizer, row["prompt"], [row["chosen"]]),
                 lambda: encode_prompt(tokenizer, row["prompt"])):
        with pytest.raises(UserError) as err:
            call()
        assert "no chat template" in str(err.value) and "--template plain" in str(err.value)
        assert "\n" not in str(err.value)


def test_batched_encoding_equals_row_by_row(tokenizers):
    """encode_examples tokenizes plain rows in one batch and interleaves chat rows: same as one row at a time."""
    tokenizer = tokenizers["llama3"]
    chat, plain = chat_rows("llama3"), plain_rows(tokenizer.eos_token)
    rows = [plain[0], chat[0], plain[1], chat[1], chat[2], plain[2], plain[3]]
    batched = encode_examples(tokenizer, [r["prompt"] for r in rows], [[r["chosen"], r["rejected"]] for r in rows])
    assert batched == [encode_example(tokenizer, r["prompt"], [r["chosen"], r["rejected"]]) for r in rows]


def test_the_sampler_renders_a_template_once_and_again_after_it_changes(tokenizers, monkeypatch):
    import copy

    import alignkit.data.tokenize as tokenize
    from alignkit.engine.sample import eos_ids

    tokenizer = copy.copy(tokenizers["chatml"])  # a fresh object: nothing remembered for it yet
    renders = []
    real = tokenize.end_of_turn_ids
    monkeypatch.setattr(tokenize, "end_of_turn_ids", lambda t: renders.append(1) or real(t))
    first = eos_ids(tokenizer)
    assert eos_ids(tokenizer) == first and len(renders) == 1
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in first
    tokenizer.chat_template = tokenizers["llama3"].chat_template  # another template: rendered again
    eos_ids(tokenizer)
    assert len(renders) == 2
