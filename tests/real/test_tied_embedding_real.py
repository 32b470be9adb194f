"""The tied embedding's row-by-row gradient on SmolLM2 (49k × 576 tied weight, padding_idx 2, which is the
<|im_end|> every ChatML turn ends with): the DPO gradients of four real pairs through the shared-prompt forward equal
autograd's dense ones, fp32."""
import copy

import pytest
from real_helpers import pair_rows

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_smollm2_gradients_equal_the_dense_ones(smollm2_dir, smollm2_tokenizer):
    from types import SimpleNamespace

    import torch
    from transformers import AutoModelForCausalLM

    from alignkit.data.collate import collate_pairs
    from alignkit.data.tokenize import encode_examples
    from alignkit.engine.logprobs import pair_logprobs
    from alignkit.engine.tied_embedding import RowEmbeddingGrad

    plain = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype="float32").train()
    fast = copy.deepcopy(plain)
    pad = plain.get_input_embeddings().padding_idx
    assert pad == smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")  # what makes the padding row matter
    assert RowEmbeddingGrad.where_exact(fast, SimpleNamespace(sparse_embedding_grad=True),
                                        SimpleNamespace(world=1, sharded=False)) is not None
    rows = pair_rows(4)
    encoded = encode_examples(smollm2_tokenizer, [r["prompt"] for r in rows],
                              [[r["chosen"], r["rejected"]] for r in rows])
    batch = collate_pairs([{"prompt_input_ids": e.prompt_ids, "chosen_input_ids": e.response_ids[0],
                            "rejected_input_ids": e.response_ids[1]} for e in encoded], smollm2_tokenizer.pad_token_id)
    assert (batch["input_ids"] == pad).any()
    for model in (plain, fast):
        out = pair_logprobs(model, batch)
        (-(torch.nn.functional.logsigmoid(0.1 * (out["chosen"] - out["rejected"]))).sum()).backward()
    worst = max(((p.grad - q.grad).abs().max() / p.grad.abs().max()).item()
                for p, q in zip(plain.parameters(), fast.parameters()))
    assert worst < 1e-5
    weight = plain.get_input_embeddings().weight
    assert weight.grad[batch["input_ids"][0, :4]].abs().sum() > 0  # the looked-up rows did get gradients
