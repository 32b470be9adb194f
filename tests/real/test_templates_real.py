"""The fast lane's tokenization checks (tests/data/test_tokenize.py) on a real vocabulary: SmolLM2's own tokenizer,
as converted from its GGUF, and each template family built on SmolLM2's 49k byte-level BPE. alignkit's ids must be
TRL 1.16's, and decode's prompt the training prompt."""
import pytest
from chat_families import FAMILIES, bpe_from_folder, build
from tokenize_checks import conversational_rows, mismatches, plain_rows, prompt_mismatches

from alignkit.data.tokenize import encode_example, end_of_turn_ids

pytestmark = [pytest.mark.real, pytest.mark.slow]
trl = pytest.importorskip("trl")


def test_smollm2_chatml_ids_are_trls(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    chat, plain = conversational_rows(), plain_rows(tokenizer.eos_token)
    assert mismatches(tokenizer, chat) == []
    assert mismatches(tokenizer, plain) == []
    assert prompt_mismatches(tokenizer, chat + plain) == []
    assert end_of_turn_ids(tokenizer) == {tokenizer.convert_tokens_to_ids("<|im_end|>")}
    row = chat[0]
    example = encode_example(tokenizer, row["prompt"], [row["chosen"], row["rejected"]])
    # SmolLM2's template adds its default system turn; the response carries ChatML's turn end and newline
    assert tokenizer.decode(example.prompt_ids) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat colour is the sky?<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.decode(example.response_ids[0]) == "Blue.<|im_end|>\n"
    assert tokenizer.eos_token == "<|im_end|>" and example.response_ids[0].count(tokenizer.eos_token_id) == 1


# The families with their own special tokens and templates; the plain BOS, newline-turn and diverging cases do not
# depend on the vocabulary and stay in the fast lane only (each family built on 49k tokens costs seconds).
ON_SMOLLM2 = ("chatml", "llama3", "mistral", "gemma")


@pytest.fixture(scope="module")
def smollm2_families(smollm2_dir, tmp_path_factory):
    base = bpe_from_folder(smollm2_dir)
    return {name: build(base, FAMILIES[name], tmp_path_factory.mktemp(f"smol-{name}")) for name in ON_SMOLLM2}


@pytest.mark.parametrize("name", ON_SMOLLM2)
def test_families_on_smollm2s_vocabulary_match_trl(name, smollm2_families):
    tokenizer, family = smollm2_families[name], FAMILIES[name]
    rows = plain_rows(tokenizer.eos_token)
    if family.template:
        chat = conversational_rows(system=family.system)
        assert mismatches(tokenizer, chat) == []
        rows += chat
    assert mismatches(tokenizer, plain_rows(tokenizer.eos_token)) == []
    assert prompt_mismatches(tokenizer, rows) == []
    expected = {tokenizer.convert_tokens_to_ids(family.turn_end)} if family.turn_end else set()
    assert end_of_turn_ids(tokenizer) == expected
