"""The fused AdamW kernel the training loop uses on whole parameters against the plain (foreach) one."""
import copy
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from alignkit.engine.train import adamw, fused_adamw  # noqa: E402


def test_fused_adamw_steps_as_the_plain_one_does():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    twin = copy.deepcopy(net)
    cfg = SimpleNamespace(learning_rate=1e-2, weight_decay=0.1)
    fast, plain = adamw(list(net.parameters()), cfg, fused=True), adamw(list(twin.parameters()), cfg, fused=False)
    assert fast.defaults["fused"] and not plain.defaults["fused"]
    x = torch.randn(8, 16)
    before = [p.detach().clone() for p in net.parameters()]
    for _ in range(5):
        for model, opt in ((net, fast), (twin, plain)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    assert max((p - q).abs().max().item() for p, q in zip(net.parameters(), twin.parameters())) < 1e-6
    assert max((p - b).abs().max().item() for p, b in zip(net.parameters(), before)) > 1e-2  # 5 steps of lr 1e-2


@pytest.mark.parametrize("sharded,device,expected", [(False, "cpu", True), (False, "cuda", True),
                                                     (True, "cuda", False), (False, "mps", False)])
def test_fused_only_on_whole_parameters_on_cpu_or_cuda(sharded, device, expected):
    dist = SimpleNamespace(sharded=sharded)
    accelerator = SimpleNamespace(device=torch.device(device))
    assert fused_adamw(dist, accelerator) is expected
