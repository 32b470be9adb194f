"""On SmolLM2's real weights, a prompt prefilled once and its KV cache shared by its samples gives the samples
that prefilling every row gives, token for token (the fast path of `alignkit decode` against its plain twin), with
torch's matmuls and with oneDNN's (--onednn on)."""
import pytest

from alignkit.engine.distributions import SampleDecoder
from alignkit.engine.sample import SamplingSettings, encode_prompts, row_generator, sample_batch

pytestmark = [pytest.mark.real, pytest.mark.slow]


@pytest.mark.parametrize("kernel", ["torch", "onednn"])
def test_shared_prefill_samples_equal_one_prefill_per_row(kernel, smollm2_tokenizer, request):
    model = request.getfixturevalue("smollm2_model" if kernel == "torch" else "smollm2_onednn")
    messages = [[{"role": "user", "content": c}] for c in ("Why is the sky blue?", "Name a fruit.")]
    rows = [ids for ids in encode_prompts(smollm2_tokenizer, messages) for _ in range(4)]  # 8 rows, 2 prompts
    out = {share: sample_batch({"policy": model}, smollm2_tokenizer, rows, SampleDecoder(),
                               SamplingSettings(), max_new_tokens=16, share_prompts=share, draw="inverse-cdf",
                               generator=[row_generator(0, n // 4, n % 4, "cpu") for n in range(8)])
           for share in (False, True)}
    assert out[True].token_ids == out[False].token_ids
    assert out[True].logprobs == pytest.approx(out[False].logprobs, abs=1e-3)
    assert len({tuple(t) for t in out[True].token_ids}) > 2  # real samples, not one repeated continuation
