"""The sampling loop on tiny Llama models: the KV-cache path against recomputing the prefix each step, left
padding against one prompt at a time, greedy decoding against transformers' generate, prompt encoding."""
import pytest
import torch

from alignkit.engine.distributions import SampleDecoder
from alignkit.engine.sample import SamplingSettings, encode_prompts, sample
from alignkit.errors import UserError

PROMPTS = ["what is 2+2?", "a", "hello there friend"]


def test_kv_cache_gives_the_same_tokens_as_recomputing_the_prefix(llamas, tokenizer):
    model = llamas[0]
    ids = encode_prompts(tokenizer, PROMPTS) * 2
    settings = SamplingSettings(temperature=1.0, top_p=0.95)
    cached = sample({"policy": model}, tokenizer, ids, SampleDecoder(), settings, max_new_tokens=16, seed=3)
    full = sample({"policy": model}, tokenizer, ids, SampleDecoder(), settings, max_new_tokens=16, seed=3,
                  use_cache=False)
    assert cached.token_ids == full.token_ids
    assert cached.logprobs == pytest.approx(full.logprobs, abs=1e-4)
    assert all(len(t) == 16 or r == "eos" for t, r in zip(cached.token_ids, cached.finish_reasons))


def test_left_padded_batch_equals_one_prompt_at_a_time(llamas, tokenizer):
    # greedy (temperature 0) takes randomness out, so any difference would come from padding or positions
    model = llamas[0]
    ids = encode_prompts(tokenizer, PROMPTS)
    greedy = SamplingSettings(temperature=0.0)
    batched = sample({"policy": model}, tokenizer, ids, SampleDecoder(), greedy, max_new_tokens=10)
    alone = [sample({"policy": model}, tokenizer, [p], SampleDecoder(), greedy, max_new_tokens=10).token_ids[0]
             for p in ids]
    assert batched.token_ids == alone


def test_greedy_matches_transformers_generate(llamas, tokenizer):
    model = llamas[1]
    ids = encode_prompts(tokenizer, ["hello there friend"])
    ours = sample({"policy": model}, tokenizer, ids, SampleDecoder(), SamplingSettings(temperature=0.0),
                  max_new_tokens=10)
    reference = model.generate(torch.tensor(ids), attention_mask=torch.ones(1, len(ids[0]), dtype=torch.long),
                               do_sample=False, max_new_tokens=10, pad_token_id=0, eos_token_id=1)
    theirs = reference[0, len(ids[0]):].tolist()
    assert ours.token_ids[0] == theirs[:len(ours.token_ids[0])]


def test_encode_prompts_plain_and_chat(tokenizer):
    assert encode_prompts(tokenizer, ["ab"]) == [[3, 4]]  # plain: no special tokens added
    messages = [{"role": "user", "content": "ab"}]
    with pytest.raises(UserError, match="no chat template"):
        encode_prompts(tokenizer, [messages])
    # plain flattens messages to 'role: content' text, as prepare renders them: the same ids in training and decode
    assert encode_prompts(tokenizer, [messages], template="plain") == [
        tokenizer("user: ab\nassistant: ")["input_ids"]]
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}={% endfor %}"
    try:
        assert encode_prompts(tokenizer, [messages]) == [[3, 4, tokenizer.convert_tokens_to_ids("=")]]  # auto uses the template for messages
        assert encode_prompts(tokenizer, ["ab"], template="chat") == [[3, 4, tokenizer.convert_tokens_to_ids("=")]]
        assert encode_prompts(tokenizer, ["ab"]) == [[3, 4]]  # auto: strings stay plain
    finally:
        tokenizer.chat_template = None
