"""--onednn: fp32 CPU linear layers in oneDNN, forward and backward, against torch's own F.linear (the plain twin):
the same outputs and gradients to float rounding, torch's path wherever oneDNN cannot take the call, the swap only
where the mode, the device and the layer's size say so, and a whole training run equal to its --onednn off twin."""
import copy

import pytest

torch = pytest.importorskip("torch")

from alignkit.engine import onednn_linear as od  # noqa: E402
from alignkit.engine.onednn_linear import OneDnnLinear, _OneDnnMatmul  # noqa: E402
from test_train import assert_same_run, train  # noqa: E402
from test_train import model_dir  # noqa: E402,F401 - the module's tiny model folder
from tiny import VOCAB, tiny_model  # noqa: E402

needs_onednn = pytest.mark.skipif(not od.onednn_available(), reason="this torch build has no oneDNN linear")
CPU = torch.device("cpu")


class Calls:
    """Counts the oneDNN linears run while installed (monkeypatching the module's `linear`)."""

    def __init__(self, monkeypatch):
        self.n, real = 0, od.linear
        monkeypatch.setattr(od, "linear", lambda *a: (setattr(self, "n", self.n + 1), real(*a))[-1])


@needs_onednn
def test_the_function_gives_f_linears_output_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 64, requires_grad=True)  # (B, T, K)
    w = torch.randn(96, 64, requires_grad=True)  # (N, K)
    b = torch.randn(96, requires_grad=True)
    g = torch.randn(3, 5, 96)
    fast = _OneDnnMatmul.apply(x, w, b)
    plain = torch.nn.functional.linear(x, w, b)
    assert fast.shape == (3, 5, 96) and torch.allclose(fast, plain, atol=1e-5, rtol=1e-5)
    fast_grads = torch.autograd.grad(fast, (x, w, b), g)
    plain_grads = torch.autograd.grad(plain, (x, w, b), g)
    for f, p in zip(fast_grads, plain_grads):
        assert f.shape == p.shape and torch.allclose(f, p, atol=1e-4, rtol=1e-5)
    # an expanded gradient (sum()'s, stride 0) and a non-contiguous input (a transposed view)
    xt = torch.randn(64, 7, requires_grad=True)
    out = _OneDnnMatmul.apply(xt.t(), w, None)
    dx, dw = torch.autograd.grad(out.sum(), (xt, w))
    ex, ew = torch.autograd.grad(torch.nn.functional.linear(xt.t(), w).sum(), (xt, w))
    assert torch.allclose(dx, ex, atol=1e-4) and torch.allclose(dw, ew, atol=1e-4)


@needs_onednn
def test_a_swapped_model_gives_the_plain_models_logits_and_gradients(monkeypatch):
    plain = tiny_model(tied=True).train()  # tied: the LM head's weight is the embedding's too
    fast = copy.deepcopy(plain)
    assert OneDnnLinear.install(fast, "on", CPU, min_weight=0) == 15  # 2 layers × 7 + the LM head
    calls = Calls(monkeypatch)
    torch.manual_seed(1)
    ids = torch.randint(3, VOCAB, (3, 9))
    losses = {}
    for name, model in (("plain", plain), ("fast", fast)):
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        losses[name] = out
    assert calls.n == 15 * 3  # every swapped layer ran its forward and both backward matmuls in oneDNN
    assert torch.allclose(losses["fast"].logits, losses["plain"].logits, atol=1e-5, rtol=1e-5)
    assert losses["fast"].loss.item() == pytest.approx(losses["plain"].loss.item(), abs=1e-6)
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        assert torch.allclose(q.grad, p.grad, atol=1e-5, rtol=1e-4), name
    # sampling and reference passes (no grad) take the direct call; the same logits again
    with torch.no_grad():
        assert torch.allclose(fast(input_ids=ids).logits, plain(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


@needs_onednn
def test_each_output_row_is_independent_of_the_rows_beside_it():
    # what keeps shared and unshared prefills token for token: a row's logits do not depend on the batch's size,
    # from two rows up (one row is a matrix-vector product, another kernel; MKL's rows move up to 11 rows on Zen 3)
    torch.manual_seed(2)
    w = torch.randn(1536, 576)  # SmolLM2's MLP shape
    x = torch.randn(400, 576)
    whole = od.linear(x, w, None)
    for m in (2, 3, 5, 16, 33, 128, 333):
        assert torch.equal(od.linear(x[:m], w, None), whole[:m])


@needs_onednn
def test_calls_it_cannot_take_run_torchs_own_linear(monkeypatch):
    torch.manual_seed(3)
    layer = torch.nn.Linear(64, 32)
    OneDnnLinear.install(layer, "on", CPU, min_weight=0)
    assert type(layer) is OneDnnLinear
    calls = Calls(monkeypatch)
    x = torch.randn(4, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # CPU autocast: bf16, as F.linear gives it
        assert layer(x).dtype == torch.bfloat16
    half = copy.deepcopy(layer).to(torch.bfloat16)  # a cast after the swap
    assert torch.equal(half(x.bfloat16()), torch.nn.functional.linear(x.bfloat16(), half.weight, half.bias))
    assert calls.n == 0
    assert torch.allclose(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias), atol=1e-6)
    assert calls.n == 1


def test_it_swaps_only_where_mode_device_and_size_say_so(monkeypatch):
    monkeypatch.setattr(od, "onednn_available", lambda: True)
    notes = []
    big = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 255), torch.nn.Linear(256, 256).double())
    assert OneDnnLinear.install(copy.deepcopy(big), "off", CPU, notes.append) == 0
    assert OneDnnLinear.install(copy.deepcopy(big), "on", CPU, notes.append) == 1  # 256 × 255 is under MIN_WEIGHT
    monkeypatch.setattr(od, "cpu_info", lambda: ("AuthenticAMD", frozenset({"avx2"})))  # Zen 3: MKL is as fast
    assert OneDnnLinear.install(copy.deepcopy(big), "auto", CPU, notes.append) == 0
    monkeypatch.setattr(od, "cpu_info", lambda: ("GenuineIntel", frozenset({"avx2", "avx512f"})))
    assert OneDnnLinear.install(copy.deepcopy(big), "auto", CPU, notes.append) == 0
    monkeypatch.setattr(od, "cpu_info", lambda: ("AuthenticAMD", frozenset({"avx2", "avx512f"})))  # Zen 4 / 5
    swapped = copy.deepcopy(big)
    assert OneDnnLinear.install(swapped, "auto", CPU, notes.append) == 1
    assert [type(m) for m in swapped] == [OneDnnLinear, torch.nn.Linear, torch.nn.Linear]
    assert notes == []
    assert OneDnnLinear.install(copy.deepcopy(big), "on", torch.device("cuda", 0), notes.append) == 0
    assert OneDnnLinear.install(copy.deepcopy(big), "on", CPU, notes.append, sharded=True) == 0
    assert OneDnnLinear.install(copy.deepcopy(big), "auto", torch.device("cuda", 0), notes.append) == 0
    monkeypatch.setattr(od, "onednn_available", lambda: False)
    assert OneDnnLinear.install(copy.deepcopy(big), "on", CPU, notes.append) == 0
    assert notes == ["note: --onednn on does nothing on cuda:0: it runs fp32 CPU matmuls in oneDNN",
                     "note: --onednn on does nothing in a sharded run: it runs fp32 CPU matmuls in oneDNN",
                     "note: --onednn on does nothing with this torch build (no oneDNN linear): it runs fp32 CPU "
                     "matmuls in oneDNN"]


def test_the_swap_keeps_weights_state_dict_copies_and_loras_layers(monkeypatch):
    monkeypatch.setattr(od, "onednn_available", lambda: True)
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert OneDnnLinear.install(model, "on", CPU, min_weight=0) == 15
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert type(copy.deepcopy(model).model.layers[0].mlp.up_proj) is OneDnnLinear  # a frozen reference's copy
    from alignkit.engine.models import add_lora

    lora = add_lora(tiny_model(), 4, 8, 0.0, "q_proj,v_proj")
    OneDnnLinear.install(lora, "on", CPU, min_weight=0)
    q_proj = lora.base_model.model.model.layers[0].self_attn.q_proj  # peft's LoRA layer keeps its own forward
    assert type(q_proj) is not OneDnnLinear and type(q_proj.base_layer) is OneDnnLinear
    assert type(q_proj.lora_A["default"]) is OneDnnLinear  # a plain nn.Linear, swapped like any other


@needs_onednn
def test_a_run_with_onednn_is_the_plain_run_to_rounding(model_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(od, "MIN_WEIGHT", 0)  # the tiny model's layers are far under the real threshold
    calls = Calls(monkeypatch)
    plain = train(model_dir, tmp_path / "off", monkeypatch, max_steps=3, batch_size=4, max_grad_norm=1.0,
                  onednn="off")
    assert calls.n == 0
    fast = train(model_dir, tmp_path / "on", monkeypatch, max_steps=3, batch_size=4, max_grad_norm=1.0,
                 onednn="on")
    assert calls.n > 0
    assert_same_run(plain, fast, steps=3)


def test_onednn_is_left_out_of_the_run_fingerprint():
    from alignkit.engine.checkpoint import run_fingerprint

    resolved = {"model": "m", "learning_rate": 1e-6, "onednn": "auto"}
    assert run_fingerprint({**resolved, "onednn": "on"}, 1, "d") == run_fingerprint(resolved, 1, "d")
    assert run_fingerprint({**resolved, "learning_rate": 2e-6}, 1, "d") != run_fingerprint(resolved, 1, "d")


def test_the_cpu_info_reads_vendor_and_flags(monkeypatch, tmp_path):
    od.cpu_info.cache_clear()
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nflags\t\t: fpu avx2 avx512f\n\n"
                    "processor\t: 1\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu\n")
    monkeypatch.setattr(od, "Path", lambda _: fake)
    try:
        assert od.cpu_info() == ("AuthenticAMD", frozenset({"fpu", "avx2", "avx512f"}))
        assert od.auto_engages()
    finally:
        od.cpu_info.cache_clear()
