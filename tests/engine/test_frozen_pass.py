"""frozen_pass / set_training: eval mode for every module without transformers' per-switch re-kernelizing."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from alignkit.engine.reference import frozen_pass, set_training  # noqa: E402


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))

    def train(self, mode: bool = True):  # transformers' override re-kernelizes here; frozen_pass must not call it
        raise AssertionError("frozen_pass called train()")


def test_frozen_pass_sets_every_flag_restores_them_and_skips_train():
    net = Net()
    set_training(net, True)
    x = torch.ones(8, 4)
    with frozen_pass(net):
        assert not any(m.training for m in net.modules())
        assert not torch.is_grad_enabled()
        out = net.inner(x)
        assert torch.equal(out, net.inner(x))  # dropout off: the same output twice
    assert all(m.training for m in net.modules())
    assert torch.is_grad_enabled()


def test_frozen_pass_restores_the_mode_after_an_error():
    net = Net()
    set_training(net, True)
    with pytest.raises(RuntimeError):
        with frozen_pass(net):
            raise RuntimeError("boom")
    assert all(m.training for m in net.modules())
