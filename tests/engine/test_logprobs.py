"""The chunked, response-only log-prob path against a plain reference: full log_softmax over every position."""
import pytest
import torch

from alignkit.data.collate import collate_pairs
from alignkit.engine.logprobs import gather_logprobs, pair_logprobs, response_logprobs
from tiny import PAD, pair_rows, tiny_model

torch.set_num_threads(1)


def plain_sequence_logprob(model, prompt, response):
    """One unpadded sequence: Σ_t log softmax(logits[p + t − 1])[response_t] over all response tokens."""
    ids = torch.tensor([prompt + response])
    logp = torch.log_softmax(model(ids).logits.float(), -1)[0]  # (L, V)
    p = len(prompt)
    return sum(logp[p + t - 1, tok].item() for t, tok in enumerate(response))


def test_collate_layout():
    rows = pair_rows(2)
    batch = collate_pairs(rows, PAD)
    assert batch["input_ids"].shape[0] == 4
    # Row 2 is the first pair's rejected sequence: prompt + rejected, then padding.
    seq = rows[0]["prompt_input_ids"] + rows[0]["rejected_input_ids"]
    assert batch["input_ids"][2, : len(seq)].tolist() == seq
    assert batch["attention_mask"][2].sum().item() == len(seq)
    assert batch["response_lengths"].tolist() == [len(r["chosen_input_ids"]) for r in rows] + \
        [len(r["rejected_input_ids"]) for r in rows]


@pytest.mark.parametrize("chunk", [1024, 3])
def test_chunked_logprobs_equal_the_plain_reference(chunk):
    model = tiny_model()
    rows = pair_rows(3, seed=1)
    with torch.no_grad():
        out = pair_logprobs(model, collate_pairs(rows, PAD), chunk=chunk)
        for i, row in enumerate(rows):
            want_c = plain_sequence_logprob(model, row["prompt_input_ids"], row["chosen_input_ids"])
            want_r = plain_sequence_logprob(model, row["prompt_input_ids"], row["rejected_input_ids"])
            assert out["chosen"][i].item() == pytest.approx(want_c, rel=1e-5)
            assert out["rejected"][i].item() == pytest.approx(want_r, rel=1e-5)
    assert out["chosen_tokens"].tolist() == [len(r["chosen_input_ids"]) for r in rows]


def test_gather_logprobs_matches_log_softmax_in_bf16():
    torch.manual_seed(0)
    logits = torch.randn(7, 50).bfloat16()
    labels = torch.randint(0, 50, (7,))
    want = torch.log_softmax(logits.float(), -1).gather(-1, labels[:, None]).squeeze(-1)
    assert torch.allclose(gather_logprobs(logits, labels, chunk=2), want, atol=1e-6)


def test_masks_and_gradients_flow_through_response_tokens_only():
    model = tiny_model()
    batch = collate_pairs(pair_rows(2, seed=2), PAD)
    logps, mask = response_logprobs(model, batch)
    assert mask.sum().item() == batch["response_lengths"].sum().item()
    assert (logps[~mask] == 0).all() and (logps[mask] < 0).all()
    logps.sum().backward()
    assert model.lm_head.weight.grad.abs().sum() > 0


def test_poet_transform_reaches_the_sums():
    """With POET each pair sums only its first k = min(|y_w|, |y_l|) tokens: check against per-token logps."""
    import alignkit_poet
    from alignkit.registry import NoOptions, Transform

    model = tiny_model()
    batch = collate_pairs(pair_rows(3, seed=3), PAD)
    poet = Transform(name="poet", help="", apply=alignkit_poet.poet)
    with torch.no_grad():
        logps, _ = response_logprobs(model, batch)
        out = pair_logprobs(model, batch, [(poet, NoOptions())])
    lengths = batch["response_lengths"].view(2, -1)  # (2, B)
    for i in range(3):
        k = int(lengths[:, i].min())
        assert out["chosen_tokens"][i].item() == k == out["rejected_tokens"][i].item()
        assert out["chosen"][i].item() == pytest.approx(logps[i, :k].sum().item(), rel=1e-6)
        assert out["rejected"][i].item() == pytest.approx(logps[3 + i, :k].sum().item(), rel=1e-6)
