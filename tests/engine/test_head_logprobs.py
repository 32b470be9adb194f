"""The fused LM-head log-probs (alignkit.engine.head_logprobs) against their plain twin, the model's logits with
autograd's logsumexp: values and gradients in fp32, where the fused path engages and where it must not."""
import pytest

torch = pytest.importorskip("torch")

from transformers import LlamaForCausalLM  # noqa: E402

from alignkit.data.collate import collate_pairs  # noqa: E402
from alignkit.engine import head_logprobs, packing  # noqa: E402
from alignkit.engine.logprobs import pair_logprobs, response_logprobs  # noqa: E402
from alignkit.engine.models import unwrap_model  # noqa: E402
from alignkit.engine.onednn_linear import OneDnnLinear, onednn_available  # noqa: E402
from test_train import assert_same_run, train, weights  # noqa: E402
from test_train import model_dir  # noqa: E402,F401 - the module's tiny model folder

M, D, V = 7, 16, 300


def case(bias=False, seed=0):
    """Hidden states, a head, and labels where row 0 predicts three tokens (a prompt's last position)."""
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(M, D, generator=gen)
    head = torch.nn.Linear(D, V, bias=bias)
    with torch.no_grad():
        head.weight.copy_(torch.randn(V, D, generator=gen))
        if bias:
            head.bias.copy_(torch.randn(V, generator=gen))
    at = torch.tensor([0, 0, 0, 1, 2, 3, 4, 5, 6])  # (N,)
    labels = torch.randint(0, V, (at.shape[0],), generator=gen)
    upstream = torch.randn(at.shape[0], generator=gen)  # dL/dlogp, as a loss would weigh each token
    return hidden, head, at, labels, upstream


def gradients(fn, hidden, head, at, labels, upstream):
    head.zero_grad()
    h = hidden.clone().requires_grad_(True)
    out = fn(h)
    (out * upstream).sum().backward()
    return out.detach(), h.grad, head.weight.grad.clone(), None if head.bias is None else head.bias.grad.clone()


@pytest.mark.parametrize("bias", [False, True])
def test_values_and_gradients_equal_the_plain_twin(bias):
    hidden, head, at, labels, upstream = case(bias)
    plain = gradients(lambda h: head_logprobs.plain_logprobs(head(h), at, labels), hidden, head, at, labels,
                      upstream)
    fused = gradients(lambda h: head_logprobs.head_logprobs(h, head, at, labels), hidden, head, at, labels, upstream)
    for p, f in zip(plain, fused):
        if p is not None:
            assert (p - f).abs().max().item() < 1e-5 * max(1.0, p.abs().max().item())
    # By hand for one token: log softmax(h W^T + b)[label] at the first token
    z = hidden[0] @ head.weight.t() + (head.bias if bias else 0)
    assert abs(fused[0][0].item() - (z[labels[0]] - torch.logsumexp(z, 0)).item()) < 1e-5
    assert plain[0].abs().max().item() > 1.0 and plain[2].abs().max().item() > 0.1  # not zeros on both sides


def test_without_gradients_the_same_values():
    hidden, head, at, labels, _ = case()
    with torch.no_grad():
        fused = head_logprobs.head_logprobs(hidden, head, at, labels)
        plain = head_logprobs.plain_logprobs(head(hidden), at, labels)
    assert not fused.requires_grad
    assert (fused - plain).abs().max().item() < 1e-5


def test_a_wrong_row_would_be_caught():
    """The comparison is strict enough to see a token scored at its neighbour's position."""
    hidden, head, at, labels, _ = case()
    with torch.no_grad():
        right = head_logprobs.head_logprobs(hidden, head, at, labels)
        wrong = head_logprobs.head_logprobs(hidden, head, at.roll(1), labels)
    assert (right - wrong).abs().max().item() > 1e-2


def test_a_second_backward_is_refused():
    hidden, head, at, labels, _ = case()
    out = head_logprobs.head_logprobs(hidden.requires_grad_(True), head, at, labels).sum()
    out.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward twice"):
        out.backward()


@pytest.mark.skipif(not onednn_available(), reason="no oneDNN linear in this torch build")
def test_a_onednn_head_runs_its_kernel_both_ways():
    hidden, head, at, labels, upstream = case()
    plain = gradients(lambda h: head_logprobs.plain_logprobs(head(h), at, labels), hidden, head, at, labels,
                      upstream)
    head.__class__ = OneDnnLinear
    fused = gradients(lambda h: head_logprobs.head_logprobs(h, head, at, labels), hidden, head, at, labels, upstream)
    for p, f in zip(plain[:3], fused[:3]):
        assert (p - f).abs().max().item() < 1e-4 * max(1.0, p.abs().max().item())


def tiny(cls_name="Llama", attn="sdpa", **extra):
    import transformers

    torch.manual_seed(0)
    config = getattr(transformers, f"{cls_name}Config")(
        vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, attn_implementation=attn, **extra)
    return getattr(transformers, f"{cls_name}ForCausalLM")(config).eval()


def pairs():
    return collate_pairs([{"prompt_input_ids": [3 + i, 40, 50 + i], "chosen_input_ids": [60, 70 + i, 80],
                           "rejected_input_ids": [90 + i, 100]} for i in range(3)], 0)


def test_where_it_engages():
    assert head_logprobs.applies(tiny())
    assert not head_logprobs.applies(tiny("Gemma2", "eager", final_logit_softcapping=5.0))  # tanh after the head
    assert not head_logprobs.applies(tiny("Cohere"))  # logits * logit_scale
    assert not head_logprobs.applies(tiny().to(torch.bfloat16))  # bf16 keeps the logits path
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not head_logprobs.applies(tiny())  # so does bf16 autocast over fp32 weights

    from peft import LoraConfig, get_peft_model

    wrapped = get_peft_model(tiny(), LoraConfig(r=2, target_modules=["q_proj", "lm_head"]))
    assert not head_logprobs.applies(unwrap_model(wrapped))  # a LoRA head is no plain nn.Linear


def test_a_soft_capped_model_keeps_its_logits():
    """Gemma 2 caps its logits after the head: the fused path would score the uncapped ones, so it stays off and
    the shared-prompt forward still equals the concatenated one."""
    model = tiny("Gemma2", "eager", final_logit_softcapping=0.5)
    batch = pairs()
    fast, _ = response_logprobs(model, batch, shared_prompt=True)
    plain, _ = response_logprobs(model, batch, shared_prompt=False)
    assert (fast - plain).abs().max().item() < 1e-5
    forced, _ = packing.shared_prompt_logprobs(model, batch, head="fused")
    assert (forced - plain).abs().max().item() > 1e-2  # what the rule protects against


def test_the_shared_prompt_forward_fuses_the_head_with_the_same_numbers(monkeypatch):
    model = tiny()
    batch = pairs()
    calls = []
    monkeypatch.setattr(head_logprobs._HeadLogprobs, "apply",
                        staticmethod(lambda *a, f=head_logprobs._HeadLogprobs.apply: calls.append(1) or f(*a)))
    results = {}
    for fused in (True, False):
        model.zero_grad()
        out = pair_logprobs(model, batch, fused_head=fused)
        (out["chosen"] - 0.5 * out["rejected"]).sum().backward()
        results["fused" if fused else "logits"] = (out["chosen"].detach(),
                                                   torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert calls == [1]  # the default took the fused path, once
    assert (results["fused"][0] - results["logits"][0]).abs().max().item() < 1e-5
    assert (results["fused"][1] - results["logits"][1]).abs().max().item() < 1e-5
    assert isinstance(model.lm_head.forward.__self__, torch.nn.Linear)  # the head's own forward is back


def test_the_heads_forward_is_put_back(monkeypatch):
    model = tiny()
    patched = lambda h: h  # noqa: E731
    monkeypatch.setattr(model.lm_head, "forward", patched)
    with head_logprobs.hidden_out(model):
        assert model.lm_head.forward is not patched
    assert model.lm_head.forward is patched
    monkeypatch.undo()
    with head_logprobs.hidden_out(model):
        pass
    assert "forward" not in model.lm_head.__dict__


def test_the_source_rule_reads_assignments_not_keywords():
    """Llama's forward passes `logits=logits,` to its output record after the head: a keyword, not a change."""
    assert head_logprobs._returns_head_output(LlamaForCausalLM)

    class Scaled(LlamaForCausalLM):
        def forward(self, hidden_states=None, **kwargs):
            logits = self.lm_head(hidden_states)
            logits *= 2.0
            return logits

    assert not head_logprobs._returns_head_output(Scaled)


def test_a_run_with_the_fused_head_is_the_plain_run_to_rounding(model_dir, tmp_path, monkeypatch):  # noqa: F811
    """A 3-step DPO run on the tiny model against --no-fused-head: the same losses and weights to 1e-5; the switch
    really switches (the fused Function runs in one and not the other), and it stays out of the run's fingerprint."""
    from alignkit.engine.checkpoint import run_fingerprint

    calls = []
    monkeypatch.setattr(head_logprobs._HeadLogprobs, "apply",
                        staticmethod(lambda *a, f=head_logprobs._HeadLogprobs.apply: calls.append(1) or f(*a)))
    plain = train(model_dir, tmp_path / "plain", monkeypatch, max_steps=3, batch_size=4, fused_head=False)
    assert not calls
    fused = train(model_dir, tmp_path / "fused", monkeypatch, max_steps=3, batch_size=4)
    assert calls
    assert_same_run(plain, fused, steps=3)
    trained = weights(fused)
    assert any(not torch.equal(trained[k], v) for k, v in weights(model_dir).items())  # the runs trained
    resolved = {"model": "m", "fused_head": True}
    assert run_fingerprint({**resolved, "fused_head": False}, 1, "d") == run_fingerprint(resolved, 1, "d")
