"""The packed row (alignkit.engine.packing, layout "packed"): the padded rows' real tokens fed to the model as one
row, attention on the padded rows (alignkit.engine.segments). Checked against the rows bit for bit and the plain
concatenated forward to 1e-5, and for its fallbacks: a model that drops the blocks, eager attention, checkpointing.
"""
import random

import pytest

torch = pytest.importorskip("torch")

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from alignkit.data.collate import collate_pairs, collate_sequences  # noqa: E402
from alignkit.engine import packing, segments  # noqa: E402
from alignkit.engine.logprobs import response_logprobs  # noqa: E402
from alignkit.engine.models import unwrap_model  # noqa: E402

VOCAB = 300


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch):
    """Each test starts with no model class remembered as unsupported; these tiny models (hidden 64) take the
    packed row by default as a wide model would (test_small_models_default_to_rows checks the threshold)."""
    monkeypatch.setattr(segments, "_unsupported", set())
    monkeypatch.setattr(packing, "PACKED_MIN_HIDDEN", 0)


def test_small_models_default_to_rows(monkeypatch):
    monkeypatch.setattr(packing, "PACKED_MIN_HIDDEN", 256)
    assert packing.default_layout(tiny_llama()) == "rows"  # hidden 64: the pads cost less than the bookkeeping
    torch.manual_seed(0)
    wide = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=256, intermediate_size=128,
                                        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                        attn_implementation="sdpa")).eval()
    assert packing.default_layout(wide) == "packed"


def tiny_llama(attn="sdpa", seed=0, layers=2):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, attn_implementation=attn)
    return LlamaForCausalLM(config).eval()


def online_batch(seed=1, prompts=3, G=4):
    """Groups of G samples of unequal lengths: padded rows would carry pads, the packed row none."""
    rng = random.Random(seed)
    ps = [[rng.randrange(3, VOCAB) for _ in range(rng.randint(2, 7))] for _ in range(prompts)]
    rows_prompts = [p for p in ps for _ in range(G)]
    samples = [[rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 9))] for _ in rows_prompts]
    return collate_sequences(rows_prompts, samples, 0), ps, samples


def pairs_batch(seed=0):
    rng = random.Random(seed)
    ids = lambda lo, hi: [rng.randrange(3, VOCAB) for _ in range(rng.randint(lo, hi))]  # noqa: E731
    rows = [{"prompt_input_ids": ids(1, 9), "chosen_input_ids": ids(1, 7), "rejected_input_ids": ids(1, 12)}
            for _ in range(4)]
    rows.append({**rows[0], "chosen_input_ids": ids(1, 5), "rejected_input_ids": ids(2, 6)})  # a shared prompt
    return collate_pairs(rows, 0)


def grads_of(model, batch, **kw):
    model.zero_grad()
    logps, mask = (packing.shared_prompt_logprobs(model, batch, **kw) if kw
                   else response_logprobs(model, batch, shared_prompt=False))
    (logps * mask * torch.linspace(0.5, 1.5, logps.shape[1])).sum().backward()
    return logps.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("make", [pairs_batch, lambda: online_batch()[0]], ids=["pairs", "online"])
def test_packed_equals_the_rows_bit_for_bit_and_the_plain_forward(make):
    model, batch = tiny_llama(), make()
    assert packing.default_layout(model) == "packed"  # sdpa on the CPU
    plain, plain_grad = grads_of(model, batch)
    rows, rows_grad = grads_of(model, batch, layout="rows")
    packed, packed_grad = grads_of(model, batch, layout="packed")
    assert torch.equal(packed, rows)  # the same numbers, not merely close: the pads only ever were masked out
    assert (packed_grad - rows_grad).abs().max().item() < 1e-6
    assert (packed - plain).abs().max().item() < 1e-5 and (packed_grad - plain_grad).abs().max().item() < 1e-4
    assert plain.abs().max().item() > 1.0 and plain_grad.abs().max().item() > 0.1  # real values, not zeros
    assert not segments._unsupported  # the packed call really took the blocks


def test_the_model_sees_real_tokens_only_and_attention_the_padded_rows(monkeypatch):
    import transformers.integrations.sdpa_attention as sdpa

    model = tiny_llama(layers=3)
    batch, prompts, samples = online_batch(G=3)
    blocks = [len(p) + sum(len(s) for s in samples[3 * g:3 * g + 3]) for g, p in enumerate(prompts)]
    assert len(set(blocks)) > 1  # unequal blocks: the rows carry pads
    shapes, calls = [], []
    model.model.register_forward_pre_hook(lambda m, a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                          with_kwargs=True)
    real = sdpa.sdpa_attention_forward
    monkeypatch.setattr(sdpa, "sdpa_attention_forward",
                        lambda module, q, k, v, mask, **kw: calls.append(tuple(q.shape)) or real(module, q, k, v,
                                                                                              mask, **kw))
    packing.shared_prompt_logprobs(model, batch)
    assert shapes == [(1, sum(blocks))]  # every linear layer runs on the real tokens only
    assert calls == [(len(blocks), 4, max(blocks), 16)] * 3  # one call a layer, on the (G, h, W, d) rows
    shapes.clear()
    packing.shared_prompt_logprobs(model, batch, layout="rows")
    assert shapes == [(len(blocks), max(blocks))]


def test_unpack_and_pack_place_each_token_where_the_rows_hold_it():
    index = torch.tensor([0, 1, 2, 4, 5])  # rows of width 3: [t0 t1 t2], [pad t3 t4]... as a row-major index
    seg = segments.Segments(index, rows=2, width=3, mask=torch.ones(2, 1, 3, 3, dtype=torch.bool))
    x = torch.arange(5.0).view(1, 1, 5, 1).expand(1, 2, 5, 1)  # (1, h=2, N=5, d=1): token n holds n
    padded = seg.unpack(x)  # (2, 2, 3, 1)
    assert padded[:, 0, :, 0].tolist() == [[0.0, 1.0, 2.0], [0.0, 3.0, 4.0]]
    assert torch.equal(seg.pack(padded.transpose(1, 2)), x.transpose(1, 2))  # (1, N, h, d) back, in order


def test_the_model_keeps_its_attention_after_a_call_and_after_an_error(monkeypatch):
    model, batch = tiny_llama(), pairs_batch()
    packing.shared_prompt_logprobs(model, batch)
    assert model.config._attn_implementation == "sdpa"
    monkeypatch.setattr(model.lm_head, "forward", lambda h: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        packing.shared_prompt_logprobs(model, batch)
    assert model.config._attn_implementation == "sdpa"


def test_a_model_that_drops_the_blocks_falls_back_to_rows_and_is_remembered():
    """A forward of its own that does not hand keyword arguments on: the attention never sees the blocks, its
    output over the NaN placeholder is thrown away, and the rows layout gives the right numbers."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    class OwnForward(LlamaForCausalLM):
        def forward(self, input_ids=None, attention_mask=None, position_ids=None, use_cache=None, **kwargs):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                use_cache=use_cache).last_hidden_state
            return CausalLMOutputWithPast(logits=self.lm_head(hidden))

    base = tiny_llama()
    model = OwnForward(base.config).eval()
    model.load_state_dict(base.state_dict())
    batch = online_batch()[0]
    assert packing.default_layout(model) == "packed"
    fast, _ = packing.shared_prompt_logprobs(model, batch)
    plain, _ = response_logprobs(model, batch, shared_prompt=False)
    assert torch.isfinite(fast).all() and (fast - plain).abs().max().item() < 1e-5
    assert OwnForward in segments._unsupported and packing.default_layout(model) == "rows"
    assert packing.default_layout(base) == "packed"  # only that class


def test_the_placeholder_mask_cannot_pass_for_a_result():
    """What an attention that ignores the blocks computes: NaN everywhere, never plausible numbers."""
    model = tiny_llama()
    placeholder = torch.full((1, 1, 1, 1), float("nan")).expand(1, 1, 6, 6)
    with torch.no_grad():
        logits = model(input_ids=torch.arange(3, 9)[None], attention_mask=placeholder, use_cache=False).logits
    assert torch.isnan(logits).all()


def test_eager_attention_checkpointing_and_gpus_use_the_rows_layout(monkeypatch):
    assert packing.default_layout(tiny_llama("eager")) == "rows"  # eager's function is each model's own
    model = tiny_llama()
    # a layer recomputed in the backward would run outside the packed call
    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    assert packing.default_layout(model) == "rows"
    monkeypatch.setattr(packing, "PACKED_DEVICES", ())
    assert packing.default_layout(tiny_llama()) == "rows"


def test_a_lora_wrapper_and_the_toy_model_run_packed():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from alignkit import toy

    toy_model = AutoModelForCausalLM.from_pretrained(toy.resolve("toy:instruct")).eval()
    wrapped = get_peft_model(tiny_llama(), LoraConfig(r=2, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))
    for model in (toy_model, wrapped):
        vocab = unwrap_model(model).config.vocab_size
        batch = collate_sequences([[5 % vocab, 6 % vocab]] * 2 + [[7 % vocab]] * 2,
                                  [[8 % vocab], [9 % vocab, 10 % vocab], [11 % vocab] * 3, [12 % vocab]], 0)
        assert packing.default_layout(model) == "packed"
        fast, _ = packing.shared_prompt_logprobs(model, batch)
        plain, _ = response_logprobs(model, batch, shared_prompt=False)
        assert (fast - plain).abs().max().item() < 1e-5
    assert not segments._unsupported
