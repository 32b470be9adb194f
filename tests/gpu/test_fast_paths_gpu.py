"""The fast paths on a CUDA device against their plain twins (skipped without CUDA): the shared-prompt forward in
fp32 and in bf16, shared prefill in sampling, and the tied embedding's row-wise gradient under bf16 autocast (fp32
master weights, as full fine-tuning runs), on a Qwen2-shaped random model with a 32k vocabulary.

Tolerances: fp32 as on the CPU (per-token log-probs to 1e-4); bf16 per-token log-probs to 0.1 and the summed
log-probs of a response to 2 % of their size (bf16 keeps 8 bits of mantissa: two layouts round differently).
Sampling: shared prefill gives the same tokens as one prefill per row in fp32; the decode step (engine/decode_step.py)
gives the forward's logits to 1e-5 in fp32 and 0.1 in bf16.
"""
import random
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
ROOT = Path(__file__).parents[2]
VOCAB = 32000


def qwen_like(dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=True)
    return Qwen2ForCausalLM(config).to("cuda", dtype).eval()


def pairs(n=8, seed=0):
    rng = random.Random(seed)
    ids = lambda lo, hi: [rng.randrange(3, VOCAB) for _ in range(rng.randint(lo, hi))]  # noqa: E731
    return [{"prompt_input_ids": ids(20, 200), "chosen_input_ids": ids(5, 150), "rejected_input_ids": ids(5, 150)}
            for _ in range(n)]


@pytest.mark.parametrize("dtype,token_tol,sum_rel", [(torch.float32, 1e-4, 1e-5), (torch.bfloat16, 0.1, 0.02)])
def test_shared_prompt_forward_on_cuda(dtype, token_tol, sum_rel):
    from alignkit.data.collate import collate_pairs
    from alignkit.engine.logprobs import pair_logprobs, response_logprobs
    from alignkit.engine.packing import default_layout, shared_prompt_logprobs

    model = qwen_like(dtype)
    batch = {k: v.to("cuda") for k, v in collate_pairs(pairs(), 0).items()}
    with torch.no_grad():
        fast, mask = response_logprobs(model, batch, shared_prompt=True)
        plain, _ = response_logprobs(model, batch, shared_prompt=False)
        assert (fast - plain)[mask].abs().max().item() < token_tol
        sums = [pair_logprobs(model, batch, shared_prompt=s)["chosen"] for s in (True, False)]
        packed, _ = shared_prompt_logprobs(model, batch, layout="packed")  # rows is the default on a GPU
    assert ((sums[0] - sums[1]).abs() / sums[1].abs()).max().item() < sum_rel
    assert default_layout(model) == "rows"
    assert (packed - plain)[mask].abs().max().item() < token_tol


def test_shared_prefill_on_cuda():
    sys.path.insert(0, str(ROOT / "tests" / "sampling"))
    from sampling_helpers import tiny_llama, tiny_tokenizer

    from alignkit.engine.distributions import SampleDecoder
    from alignkit.engine.sample import SamplingSettings, encode_prompts, sample

    tokenizer = tiny_tokenizer()
    model = tiny_llama(1, len(tokenizer)).to("cuda")
    rows = [p for p in encode_prompts(tokenizer, ["what is 2+2?", "a", "hello there friend"]) for _ in range(4)]
    kwargs = dict(max_new_tokens=16, seed=5, batch_size=len(rows), draw="multinomial", per_row=True)
    plain = sample({"policy": model}, tokenizer, rows, SampleDecoder(), SamplingSettings(), share_prompts=False,
                   **kwargs)
    fast = sample({"policy": model}, tokenizer, rows, SampleDecoder(), SamplingSettings(), share_prompts=True,
                  **kwargs)
    assert fast.token_ids == plain.token_ids


def test_tied_embedding_rows_on_cuda_under_bf16_autocast():
    """The same gradients as autograd's dense embedding backward (both add the same fp32 rows, in another order),
    and at least one (V, D) fp32 tensor less at the backward's peak."""
    import copy
    from types import SimpleNamespace

    from alignkit.data.collate import collate_pairs
    from alignkit.engine.logprobs import pair_logprobs
    from alignkit.engine.tied_embedding import RowEmbeddingGrad

    plain = qwen_like(torch.float32).train()
    fast = copy.deepcopy(plain)
    assert RowEmbeddingGrad.where_exact(fast, SimpleNamespace(sparse_embedding_grad=True),
                                        SimpleNamespace(world=1, sharded=False)) is not None
    batch = {k: v.to("cuda") for k, v in collate_pairs(pairs(), 0).items()}
    peaks = []
    for model in (plain, fast):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = pair_logprobs(model, batch)
            loss = -torch.nn.functional.logsigmoid(0.1 * (out["chosen"] - out["rejected"])).sum()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        loss.backward()
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated())
    for p, q in zip(plain.parameters(), fast.parameters()):
        assert ((p.grad - q.grad).abs().max() / p.grad.abs().max()).item() < 1e-5
    weight = plain.get_input_embeddings().weight
    assert peaks[0] - peaks[1] >= 0.9 * weight.numel() * 4, peaks


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 0.1)])
def test_decode_step_against_the_forward_on_cuda(dtype, tol):
    """alignkit.engine.decode_step on CUDA: the forward's logits (bit for bit on the CPU; here within `tol`) over
    four steps of a left-padded batch."""
    from transformers import DynamicCache

    from alignkit.engine.decode_step import DecodeStep

    model = qwen_like(dtype)
    torch.manual_seed(0)
    ids = torch.randint(3, VOCAB, (8, 64), device="cuda")
    mask = torch.ones_like(ids)
    mask[::3, :10] = 0
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        caches = [DynamicCache(config=model.config) for _ in range(2)]
        for cache in caches:
            model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True, cache=cache)
        step = DecodeStep.after_prefill(model, caches[1], 68, mask)
        assert step is not None
        full, pos = mask, position[:, -1:]
        for token in torch.randint(3, VOCAB, (4, 8, 1), device="cuda"):
            full, pos = torch.cat([full, torch.ones_like(token)], -1), pos + 1
            plain = model(input_ids=token, attention_mask=full, position_ids=pos, use_cache=True,
                          cache=caches[0]).logits[:, -1]
            assert (step(token, full, pos).float() - plain.float()).abs().max().item() < tol
