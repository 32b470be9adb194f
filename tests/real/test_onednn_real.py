"""--onednn on SmolLM2's real weights: every linear layer (and the tied LM head) in oneDNN gives the plain model's
log-probs and gradients to float rounding (its shared prefill: test_shared_prefill_real.py)."""
import copy

import pytest

from alignkit.engine.sample import encode_prompts

pytestmark = [pytest.mark.real, pytest.mark.slow]


def chat_ids(tokenizer):
    import torch

    messages = [[{"role": "user", "content": c}] for c in ("Why is the sky blue?", "Name three fruits, please.")]
    rows = encode_prompts(tokenizer, messages)
    width = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.eos_token_id] * (width - len(r)) for r in rows])  # (2, T), right-padded
    return ids, torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])


def test_log_probs_and_gradients_equal_the_plain_models(smollm2_model, smollm2_onednn, smollm2_tokenizer):
    import torch

    ids, mask = chat_ids(smollm2_tokenizer)
    out = {}
    for name, model in (("plain", copy.deepcopy(smollm2_model)), ("fast", copy.deepcopy(smollm2_onednn))):
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (2, T, V)
        logps = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0] * mask[:, 1:]  # (2, T-1)
        logps.sum().backward()
        out[name] = (logps.detach(), {n: p.grad for n, p in model.named_parameters()})
    (a, ga), (b, gb) = out["plain"], out["fast"]
    assert (b - a).abs().max().item() < 1e-3  # per-token log-probs over a 49k vocabulary, fp32 summation order
    assert b.sum().item() == pytest.approx(a.sum().item(), rel=1e-5)
    for name, grad in ga.items():
        scale = grad.abs().max().item()
        assert (gb[name] - grad).abs().max().item() <= 1e-3 * scale + 1e-6, name
