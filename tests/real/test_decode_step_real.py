"""On SmolLM2's real weights (49k vocabulary, grouped-query attention, a chat template's left-padded prompts), the
sampler's decode step gives the model forward's logits bit for bit and the same samples for a seed."""
import pytest
import torch

from alignkit.engine.decode_step import DecodeStep, supports
from alignkit.engine.distributions import SampleDecoder
from alignkit.engine.sample import SamplingSettings, encode_prompts, row_generator, sample_batch

pytestmark = [pytest.mark.real, pytest.mark.slow]
MESSAGES = [[{"role": "user", "content": c}] for c in ("Why is the sky blue?", "Name a fruit.", "Hi")]


def test_decode_step_samples_equal_the_forwards(smollm2_model, smollm2_tokenizer, monkeypatch):
    assert supports(smollm2_model)
    rows = [ids for ids in encode_prompts(smollm2_tokenizer, MESSAGES) for _ in range(3)]  # 9 rows, 3 prompts
    calls = []
    real_call = DecodeStep.__call__
    monkeypatch.setattr(DecodeStep, "__call__", lambda self, *a: calls.append(1) or real_call(self, *a))
    out = {fast: sample_batch({"policy": smollm2_model}, smollm2_tokenizer, rows, SampleDecoder(), SamplingSettings(),
                              max_new_tokens=12, share_prompts=True, draw="inverse-cdf", fast_step=fast,
                              generator=[row_generator(0, n // 3, n % 3, "cpu") for n in range(len(rows))])
           for fast in (False, True)}
    assert calls
    assert out[True].token_ids == out[False].token_ids
    assert out[True].logprobs == out[False].logprobs  # the same logits bit for bit, so the same sums
    assert len({tuple(t) for t in out[True].token_ids}) > 3


def test_decode_step_logits_equal_the_forward_bit_for_bit(smollm2_model):
    from transformers import DynamicCache

    torch.manual_seed(0)
    ids = torch.randint(3, 49152, (4, 10))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        caches = [DynamicCache(config=smollm2_model.config) for _ in range(2)]
        for cache in caches:
            smollm2_model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True, cache=cache)
        step = DecodeStep.after_prefill(smollm2_model, caches[1], 14, mask)
        full, pos = mask, position[:, -1:]
        for token in torch.randint(3, 49152, (3, 4, 1)):
            full, pos = torch.cat([full, torch.ones_like(token)], -1), pos + 1
            plain = smollm2_model(input_ids=token, attention_mask=full, position_ids=pos, use_cache=True,
                                  cache=caches[0]).logits[:, -1]
            assert torch.equal(step(token, full, pos), plain)
