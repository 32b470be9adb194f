"""The optimizer step inside the backward against the plain step after it: the same weights, the same gradient
norm, and never more than one parameter's gradient alive at a time."""
import copy
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from alignkit.engine.step_in_backward import StepInBackward  # noqa: E402
from alignkit.engine.train import adamw  # noqa: E402
from test_train import metrics, train, weights  # noqa: E402
from test_train import model_dir  # noqa: E402,F401 - the module's tiny model folder
from tiny import tiny_model  # noqa: E402

CFG = SimpleNamespace(learning_rate=1e-2, weight_decay=0.1)


def batch():
    torch.manual_seed(1)
    return torch.randint(3, 64, (4, 12))


def loss_of(model, ids):
    return model(input_ids=ids, labels=ids).loss


def test_the_step_in_the_backward_gives_the_plain_weights_and_gradient_norm():
    plain_model = tiny_model().train()
    fast_model = copy.deepcopy(plain_model)
    plain = adamw(list(plain_model.parameters()), CFG, fused=True)
    fast = adamw(list(fast_model.parameters()), CFG, fused=True)
    params = list(fast_model.parameters())
    stepper = StepInBackward(fast, params)
    alive = []  # at each hook: how many parameters hold a gradient
    for p in params:
        p.register_post_accumulate_grad_hook(lambda _: alive.append(sum(q.grad is not None for q in params)))
    ids = batch()
    for _ in range(3):
        loss_of(plain_model, ids).backward()
        plain_norm = float(torch.nn.utils.clip_grad_norm_(plain_model.parameters(), float("inf")))
        plain.step()
        plain.zero_grad(set_to_none=True)

        loss_of(fast_model, ids).backward()
        assert all(p.grad is None for p in params)  # every parameter stepped and its gradient freed
        assert stepper.take_norm() == pytest.approx(plain_norm, rel=1e-5)
        fast.step()  # what the loop still calls: nothing left to step
    for p, q in zip(plain_model.parameters(), fast_model.parameters()):
        assert torch.equal(p, q)  # the same fused kernel on the same numbers
    assert (plain_model.lm_head.weight - tiny_model().lm_head.weight).abs().max() > 1e-3  # it did train
    # the hooks registered after the stepper's run after it: this parameter's gradient is already gone
    assert max(alive) == 0 and len(alive) == 3 * len(params)
    a, b = plain.state_dict()["state"], fast.state_dict()["state"]  # keyed by parameter index
    assert a.keys() == b.keys()
    assert all(torch.equal(a[i][k], b[i][k]) for i in a for k in a[i])  # checkpoints hold the same state


@pytest.mark.parametrize("change,engaged", [({}, True), ({"max_grad_norm": 1.0}, False), ({"grad_accum": 2}, False),
                                            ({"world": 2}, False), ({"sharded": True}, False),
                                            ({"step_in_backward": False}, False)])
def test_it_engages_only_where_the_update_is_the_same(change, engaged):
    values = {"max_grad_norm": 0.0, "grad_accum": 1, "step_in_backward": True, "world": 1, "sharded": False, **change}
    cfg = SimpleNamespace(**{k: values[k] for k in ("max_grad_norm", "grad_accum", "step_in_backward")})
    dist = SimpleNamespace(world=values["world"], sharded=values["sharded"])
    param = torch.nn.Parameter(torch.zeros(2))
    stepper = StepInBackward.where_exact(torch.optim.AdamW([param]), [param], cfg, dist)
    assert (stepper is not None) is engaged


def test_a_run_with_the_step_in_the_backward_equals_its_plain_twin(model_dir, tmp_path, monkeypatch):  # noqa: F811
    fast = train(model_dir, tmp_path / "fast", monkeypatch, batch_size=4, max_steps=3, max_grad_norm=0.0)
    plain = train(model_dir, tmp_path / "plain", monkeypatch, batch_size=4, max_steps=3, max_grad_norm=0.0,
                  step_in_backward=False)
    wf, wp = weights(fast), weights(plain)
    for k in wf:
        assert torch.allclose(wf[k], wp[k], atol=1e-6), k
    for a, b in zip(metrics(fast), metrics(plain)):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
