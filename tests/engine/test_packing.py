"""The shared-prompt forward (alignkit.engine.packing) against its plain twin, the concatenated forward.

Each case runs both layouts on one collated batch and compares per-token log-probs, masks and gradients in fp32:
tiny random Llamas (sdpa and eager attention, grouped-query heads), the toy world's instruct model, a LoRA
wrapper, pairs that share a prompt (one row of four responses) and online-style groups of samples.
"""
import random

import pytest

torch = pytest.importorskip("torch")

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from alignkit.data.collate import collate_pairs, collate_sequences, prompt_groups  # noqa: E402
from alignkit.engine import packing  # noqa: E402
from alignkit.engine.logprobs import pair_logprobs, response_logprobs  # noqa: E402

VOCAB = 300


def tiny_llama(attn="sdpa", seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, attn_implementation=attn)
    return LlamaForCausalLM(config).eval()


def random_pairs(n, seed=0, same_prompt_as_first=1):
    rng = random.Random(seed)
    ids = lambda lo, hi: [rng.randrange(3, VOCAB) for _ in range(rng.randint(lo, hi))]  # noqa: E731
    rows = [{"prompt_input_ids": ids(1, 9), "chosen_input_ids": ids(1, 7), "rejected_input_ids": ids(1, 12)}
            for _ in range(n)]
    for _ in range(same_prompt_as_first):  # several pairs of one prompt: one packed row holds all their responses
        rows.append({**rows[0], "chosen_input_ids": ids(1, 5), "rejected_input_ids": ids(2, 6)})
    return rows


def both(model, batch):
    fast = response_logprobs(model, batch, shared_prompt=True)
    plain = response_logprobs(model, batch, shared_prompt=False)
    return fast, plain


def test_prompt_groups_number_rows_by_prompt_in_order_of_first_appearance():
    assert prompt_groups([[1, 2], [3], [1, 2], [4], [3]]) == [0, 1, 0, 2, 1]
    batch = collate_pairs(random_pairs(2, same_prompt_as_first=1), 0)
    assert batch["groups"].tolist() == [0, 1, 0, 0, 1, 0]  # chosen rows, then rejected rows


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_logprobs_and_gradients_agree_with_the_concatenated_forward(attn):
    model = tiny_llama(attn)
    batch = collate_pairs(random_pairs(5, same_prompt_as_first=2), 0)
    assert packing.supports_shared_prompt(model)
    (fast, fast_mask), (plain, plain_mask) = both(model, batch)
    assert torch.equal(fast_mask, plain_mask)
    assert (fast - plain).abs().max().item() < 1e-5
    assert plain.abs().max().item() > 1.0  # real log-probs, not zeros on both sides
    grads = []
    for shared in (True, False):
        model.zero_grad()
        out = pair_logprobs(model, batch, shared_prompt=shared)
        (out["chosen"] - 0.5 * out["rejected"]).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert (grads[0] - grads[1]).abs().max().item() < 1e-4
    assert grads[1].abs().max().item() > 0.1


def test_the_fast_path_really_differs_from_a_wrong_layout():
    """A layout in which the rejected response also saw the chosen one would be a silent bug; the comparison
    above is strict enough to catch it (the log-probs of the rejected rows move well beyond 1e-5)."""
    model = tiny_llama()
    rows = random_pairs(3, same_prompt_as_first=0)
    batch = collate_pairs(rows, 0)
    plain, mask = response_logprobs(model, batch, shared_prompt=False)
    leaked = collate_pairs([{**r, "prompt_input_ids": r["prompt_input_ids"] + r["chosen_input_ids"]} for r in rows],
                           0)
    wrong, _ = response_logprobs(model, leaked, shared_prompt=False)  # rejected rows conditioned on chosen
    assert (wrong[3:] - plain[3:])[mask[3:]].abs().max().item() > 1e-3


def test_online_groups_of_samples_agree():
    model = tiny_llama(seed=1)
    rng = random.Random(1)
    prompts = [[rng.randrange(3, VOCAB) for _ in range(rng.randint(2, 6))] for _ in range(3)]
    G = 4
    rows_prompts = [p for p in prompts for _ in range(G)]
    samples = [[rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 8))] for _ in rows_prompts]
    batch = collate_sequences(rows_prompts, samples, 0)
    assert batch["groups"].tolist() == [g for g in range(3) for _ in range(G)]
    (fast, _), (plain, _) = both(model, batch)
    assert (fast - plain).abs().max().item() < 1e-5


def test_toy_instruct_and_a_lora_wrapper_agree():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from alignkit import toy

    model = AutoModelForCausalLM.from_pretrained(toy.resolve("toy:instruct")).eval()
    vocab = model.config.vocab_size
    rows = [{"prompt_input_ids": [(7 * i + j) % vocab for j in range(3 + i)],
             "chosen_input_ids": [(11 * i + j) % vocab for j in range(2 + i)],
             "rejected_input_ids": [(13 * i + j) % vocab for j in range(4)]} for i in range(4)]
    batch = collate_pairs(rows, 0)
    (fast, _), (plain, _) = both(model, batch)
    assert (fast - plain).abs().max().item() < 1e-5
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    assert packing.supports_shared_prompt(wrapped)
    (fast, _), (plain, _) = both(wrapped, batch)
    assert (fast - plain).abs().max().item() < 1e-5


def test_an_attention_without_custom_masks_runs_the_plain_path(monkeypatch):
    model = tiny_llama()
    batch = collate_pairs(random_pairs(2), 0)
    monkeypatch.setattr(model.config, "_attn_implementation", "flash_attention_2")
    assert not packing.supports_shared_prompt(model)  # flash-attention reads no 4D mask
    monkeypatch.setattr(model.config, "_attn_implementation", "sdpa")  # the forward itself runs on sdpa here
    monkeypatch.setattr("alignkit.engine.logprobs.supports_shared_prompt", lambda m: False)
    monkeypatch.setattr("alignkit.engine.logprobs.shared_prompt_logprobs", lambda *a, **k: pytest.fail("packed"))
    logps, _ = response_logprobs(model, batch)
    assert torch.equal(logps, response_logprobs(model, batch, shared_prompt=False)[0])


def test_the_lm_head_runs_only_at_predicting_positions(monkeypatch):
    """The (M, V) logits block: one row per prompt's last token plus each response's tokens but its last."""
    model = tiny_llama()
    rows = random_pairs(3, same_prompt_as_first=0)
    batch = collate_pairs(rows, 0)
    seen = []
    head = model.lm_head.forward
    monkeypatch.setattr(model.lm_head, "forward", lambda h: seen.append(tuple(h.shape)) or head(h))
    response_logprobs(model, batch)
    expected = sum(1 + len(r["chosen_input_ids"]) - 1 + len(r["rejected_input_ids"]) - 1 for r in rows)
    assert seen and seen[0][-2] == expected


def test_a_forward_of_its_own_gets_full_logits_sliced_afterwards():
    """Remote code or an older release that slices logits its own way is never handed the boolean mask."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    class OwnForward(LlamaForCausalLM):
        def forward(self, input_ids=None, attention_mask=None, position_ids=None, use_cache=None, **kwargs):
            assert "logits_to_keep" not in kwargs
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                use_cache=use_cache).last_hidden_state
            return CausalLMOutputWithPast(logits=self.lm_head(hidden))

    torch.manual_seed(0)
    model = OwnForward(tiny_llama().config).eval()
    assert not packing._takes_boolean_logits_to_keep(model)
    batch = collate_pairs(random_pairs(3), 0)
    (fast, _), (plain, _) = both(model, batch)
    assert (fast - plain).abs().max().item() < 1e-5


def test_the_layout_of_two_prompts_worked_by_hand():
    # rows 0 and 2 share prompt [7, 8] with responses [1, 2] and [3]; row 1 has prompt [9] and response [4, 5, 6]
    input_ids = [[7, 8, 1, 2], [9, 4, 5, 6], [7, 8, 3, 0]]
    ids, pos, part, keep, at_flat, labels = packing._layout(input_ids, [2, 1, 2], [2, 3, 1], [[0, 2], [1]], 5)
    assert ids == [7, 8, 1, 2, 3, 9, 4, 5, 6, 0]
    assert pos == [0, 1, 2, 3, 2, 0, 1, 2, 3, 0]  # each response continues from its prompt
    assert part == [0, 0, 1, 1, 2, 0, 1, 1, 1, -1]
    assert keep == [False, True, True, False, False, True, True, True, False, False]
    # row 0's tokens are predicted at flat 1 (the prompt's end) and 2; row 1's at 5, 6, 7; row 2's at 1 again
    assert at_flat == [1, 2, 5, 6, 7, 1]
    assert labels == [1, 2, 4, 5, 6, 3]
