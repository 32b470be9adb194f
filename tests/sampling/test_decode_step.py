"""alignkit.engine.decode_step against the model's own forward: the same logits bit for bit, step after step, and
the same samples for a seed through sample_batch; where it does not apply, the forward runs."""
import copy

import pytest
import torch
from sampling_helpers import tiny_llama

from alignkit.engine import decode_step
from alignkit.engine.decode_step import DecodeStep
from alignkit.engine.distributions import SampleDecoder
from alignkit.engine.models import unwrap_model
from alignkit.engine.sample import SamplingSettings, encode_prompts, row_generator, sample_batch

PROMPTS = ["what is 2+2?", "a", "hello there friend"]


def forward_and_step(model, ids, mask, steps=6, seed=0):
    """Logits of `steps` decode steps after one prefill, through the forward (a DynamicCache) and through
    DecodeStep (its own buffers), on the same random tokens: two lists of (B, V)."""
    from transformers import DynamicCache

    torch.manual_seed(seed)
    B, T = ids.shape
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    tokens = torch.randint(3, model.config.vocab_size, (steps, B, 1))
    with torch.no_grad():
        caches = [DynamicCache(config=model.config) for _ in range(2)]
        for cache in caches:
            model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True, cache=cache)
        step = DecodeStep.after_prefill(model, caches[1], T + steps, mask)
        assert step is not None
        plain, fast, full, pos = [], [], mask, position[:, -1:]
        for t in range(steps):
            full, pos = torch.cat([full, torch.ones_like(tokens[t])], -1), pos + 1
            out = model(input_ids=tokens[t], attention_mask=full, position_ids=pos, use_cache=True, cache=caches[0])
            plain.append(out.logits[:, -1])
            fast.append(step(tokens[t], full, pos))
    return plain, fast


def padded_batch(vocab, B=6, T=9, padded=True):
    torch.manual_seed(1)
    ids = torch.randint(3, vocab, (B, T))
    mask = torch.ones(B, T, dtype=torch.long)
    if padded:
        mask[0, :4], mask[3, :1] = 0, 0  # left padding on two rows
    return ids, mask


@pytest.mark.parametrize("padded", [True, False], ids=["left-padded", "unpadded"])
def test_logits_equal_the_forward_bit_for_bit_with_grouped_query_attention(padded):
    model = tiny_llama(3, 40)  # 4 query heads over 2 key/value heads
    plain, fast = forward_and_step(model, *padded_batch(40, padded=padded))
    assert all(torch.equal(a, b) for a, b in zip(plain, fast))
    assert not torch.equal(plain[0], plain[1])  # the steps see different tokens: not one logit row repeated


def test_logits_equal_the_forward_on_qwen2_with_attention_bias_and_not_with_a_sliding_window():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = Qwen2ForCausalLM(config).eval()
    assert model.model.layers[0].self_attn.q_proj.bias is not None
    plain, fast = forward_and_step(model, *padded_batch(40))
    assert all(torch.equal(a, b) for a, b in zip(plain, fast))
    windowed = Qwen2ForCausalLM(Qwen2Config(**{**config.to_dict(), "use_sliding_window": True, "sliding_window": 4,
                                               "layer_types": ["full_attention", "sliding_attention"]})).eval()
    assert "sliding_attention" in windowed.config.layer_types and not decode_step.supports(windowed)


def test_logits_equal_the_forward_on_the_toy_model_and_through_lora():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from alignkit import toy

    toy_model = AutoModelForCausalLM.from_pretrained(toy.resolve("toy:instruct")).eval()
    lora = get_peft_model(tiny_llama(4, 40), LoraConfig(r=2, target_modules=["q_proj", "v_proj"],
                                                        init_lora_weights=False)).eval()
    for model in (toy_model, lora):
        vocab = unwrap_model(model).config.vocab_size
        plain, fast = forward_and_step(model, *padded_batch(vocab))
        assert all(torch.equal(a, b) for a, b in zip(plain, fast))
    with lora.disable_adapter():  # the adapter is part of the step: without it the logits differ
        _, off = forward_and_step(lora, *padded_batch(40))
    assert not torch.equal(off[0], fast[0])


@pytest.mark.parametrize("draw", ["multinomial", "inverse-cdf"])
def test_sample_batch_draws_the_same_samples_with_the_fast_step(llamas, tokenizer, draw, monkeypatch):
    rows = [p for p in encode_prompts(tokenizer, PROMPTS) for _ in range(4)]  # 12 rows, left-padded prompts
    calls = []
    real_call = DecodeStep.__call__
    monkeypatch.setattr(DecodeStep, "__call__", lambda self, *a: calls.append(1) or real_call(self, *a))

    def run(fast):
        return sample_batch({"policy": llamas[0]}, tokenizer, rows, SampleDecoder(), SamplingSettings(top_p=0.95),
                            max_new_tokens=12, share_prompts=True, draw=draw, fast_step=fast,
                            generator=[row_generator(7, n // 4, n % 4, "cpu") for n in range(len(rows))])
    plain = run(False)
    assert not calls
    fast = run(True)
    assert calls  # the fast step ran
    assert fast.token_ids == plain.token_ids
    assert fast.logprobs == plain.logprobs
    assert len({tuple(t) for t in fast.token_ids}) > 3


def test_conformative_decoding_steps_both_models(llamas, tokenizer):
    from alignkit_conformative.decoder import ConformativeDecoder
    from alignkit_conformative import ConformativeOptions

    rows = [p for p in encode_prompts(tokenizer, PROMPTS) for _ in range(2)]
    decoder = ConformativeDecoder(ConformativeOptions(base_model="unused", weight=0.5))
    out = {fast: sample_batch({"policy": llamas[0], "base": llamas[1]}, tokenizer, rows, decoder, SamplingSettings(),
                              max_new_tokens=10, share_prompts=True, draw="inverse-cdf", fast_step=fast,
                              generator=[row_generator(3, n, 0, "cpu") for n in range(len(rows))])
           for fast in (False, True)}
    assert out[True].token_ids == out[False].token_ids and out[True].logprobs == out[False].logprobs


def test_where_it_does_not_apply():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = tiny_llama(5, 40)
    assert decode_step.supports(model)
    eager = copy.deepcopy(model)
    eager.config._attn_implementation = "eager"
    assert not decode_step.supports(eager)  # another attention function than the one whose mask it builds
    hooked = copy.deepcopy(model)
    hooked.model.layers[1].register_forward_pre_hook(lambda module, args: None)
    assert not decode_step.supports(hooked)  # a hook it would bypass (FSDP, offloading)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_embd=16, n_layer=1, n_head=2))
    assert not decode_step.supports(gpt2)  # an architecture not in ARCHITECTURES
    assert DecodeStep.after_prefill(gpt2, None, 8, torch.ones(1, 2)) is None
