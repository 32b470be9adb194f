"""The shared-prompt forward on SmolLM2 (49k vocabulary, ChatML ids, grouped-query attention) against the plain
concatenated forward, fp32: per-token log-probs of six of the real-model lane's pairs agree to 1e-4, their sums to 1e-5
relative, in both layouts (packed, the CPU's default, and padded rows)."""
import pytest
from real_helpers import pair_rows

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_shared_prompt_forward_equals_the_concatenated_one_on_smollm2(smollm2_model, smollm2_tokenizer):
    import torch

    from alignkit.data.collate import collate_pairs
    from alignkit.data.tokenize import encode_examples
    from alignkit.engine.logprobs import pair_logprobs, response_logprobs
    from alignkit.engine.packing import default_layout, shared_prompt_logprobs

    rows = pair_rows(6)
    encoded = encode_examples(smollm2_tokenizer, [r["prompt"] for r in rows],
                              [[r["chosen"], r["rejected"]] for r in rows])
    pairs = [{"prompt_input_ids": e.prompt_ids, "chosen_input_ids": e.response_ids[0],
              "rejected_input_ids": e.response_ids[1]} for e in encoded]
    batch = collate_pairs(pairs, smollm2_tokenizer.pad_token_id)
    with torch.no_grad():
        fast, mask = response_logprobs(smollm2_model, batch, shared_prompt=True)
        plain, plain_mask = response_logprobs(smollm2_model, batch, shared_prompt=False)
    assert torch.equal(mask, plain_mask) and mask.sum() > 40  # 6 pairs of short answers: 64 response tokens
    assert (fast - plain).abs().max().item() < 1e-4
    assert default_layout(smollm2_model) == "packed"
    with torch.no_grad():
        rows, _ = shared_prompt_logprobs(smollm2_model, batch, layout="rows")
    assert (rows - plain).abs().max().item() < 1e-4 and not torch.equal(rows, torch.zeros_like(rows))
    sums = [pair_logprobs(smollm2_model, batch, shared_prompt=s)["chosen"].detach() for s in (True, False)]
    assert torch.allclose(sums[0], sums[1], rtol=1e-5, atol=1e-4)
