"""--release-memory: glibc's malloc_trim every EVERY_BYTES of new gradients during the backward, where it can run,
and not one number of the run changed by it."""
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from alignkit.engine import heap  # noqa: E402
from alignkit.engine.heap import HeapRelease  # noqa: E402
from test_train import metrics, train, weights  # noqa: E402
from test_train import model_dir  # noqa: E402,F401 - the module's tiny model folder


def four_layers():
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch.nn.Linear(4, 4, bias=False) for _ in range(4)])  # 64 bytes a weight


def test_it_trims_each_time_every_bytes_more_gradient_bytes_have_landed():
    model = four_layers()
    calls = []
    release = HeapRelease(list(model.parameters()), calls.append, every_bytes=150)
    x = torch.randn(2, 4)
    model(x).sum().backward()
    # gradients land last layer first, 64 bytes each: 64, 128, 192 -> trim (pending 0), 64
    assert calls == [0] and release.pending == 64
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()  # 128, 192 -> trim, 64, 128: the count carries across backwards
    assert calls == [0, 0] and release.pending == 128 and release.calls == 2
    release.after_step()  # once more for the gradients the step freed; the count starts again
    assert calls == [0, 0, 0] and release.pending == 0


def test_it_engages_only_when_asked_on_the_cpu_with_glibc(monkeypatch, capsys):
    params = list(four_layers().parameters())
    cpu = SimpleNamespace(device=torch.device("cpu"), print=print)
    assert HeapRelease.where_useful(params, SimpleNamespace(release_memory=False), cpu) is None
    on = SimpleNamespace(release_memory=True)
    if heap.glibc_trim() is not None:  # Linux with glibc (CI): the real malloc_trim
        assert HeapRelease.where_useful(params, on, cpu).trim is heap.glibc_trim()
    assert capsys.readouterr().out == ""
    gpu = SimpleNamespace(device=torch.device("cuda", 0), print=print)
    assert HeapRelease.where_useful(params, on, gpu) is None
    assert "does nothing on cuda" in capsys.readouterr().out
    monkeypatch.setattr(heap, "glibc_trim", lambda: None)  # macOS, musl
    assert HeapRelease.where_useful(params, on, cpu) is None
    assert "does nothing without glibc" in capsys.readouterr().out


def test_without_the_flag_a_run_short_of_memory_hears_of_it_once(monkeypatch, capsys):
    params = list(four_layers().parameters())  # 4 weights x 64 bytes: a 1 KiB training state
    cpu = SimpleNamespace(device=torch.device("cpu"), print=print)
    off = SimpleNamespace(release_memory=False)
    monkeypatch.setattr(heap, "glibc_trim", lambda: lambda pad: 0)
    monkeypatch.setattr(heap, "free_bytes", lambda: 1706)  # 1024 >= 0.6 x 1706
    assert HeapRelease.where_useful(params, off, cpu) is None
    out = capsys.readouterr().out
    assert out.count("note:") == 1 and "--release-memory lowers the peak" in out
    monkeypatch.setattr(heap, "free_bytes", lambda: 1707)  # 1024 < 0.6 x 1707: nothing said
    assert HeapRelease.where_useful(params, off, cpu) is None
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(heap, "free_bytes", lambda: 10)  # on a GPU the CPU's memory is not the limit
    assert HeapRelease.where_useful(params, off, SimpleNamespace(device=torch.device("cuda", 0), print=print)) is None
    assert capsys.readouterr().out == ""


def test_a_run_with_release_memory_is_the_same_run(model_dir, tmp_path, monkeypatch):  # noqa: F811
    calls = []
    monkeypatch.setattr(heap, "EVERY_BYTES", 1)  # a trim after every gradient (the tiny model's are small)
    real = heap.glibc_trim()
    monkeypatch.setattr(heap, "glibc_trim", lambda: lambda pad: calls.append(pad) or (real(pad) if real else 0))
    runs = {}
    for release in (False, True):
        runs[release] = train(model_dir, tmp_path / str(release), monkeypatch, batch_size=4, max_steps=3,
                              max_grad_norm=1.0, release_memory=release)
    assert len(calls) >= 3 * 10  # it ran: every gradient of 3 steps (the tiny Llama has more than 10 weights)
    a, b = weights(runs[False]), weights(runs[True])
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit: it only hands back memory nothing holds
    assert [m["loss"] for m in metrics(runs[False])] == [m["loss"] for m in metrics(runs[True])]


def test_a_run_may_resume_with_or_without_it():
    from alignkit.engine.checkpoint import run_fingerprint

    resolved = {"model": "m", "learning_rate": 1e-6, "max_grad_norm": 1.0}
    with_it = run_fingerprint({**resolved, "release_memory": True}, 1, "data")
    assert with_it == run_fingerprint({**resolved, "release_memory": False}, 1, "data")
    assert with_it != run_fingerprint({**resolved, "release_memory": True, "max_grad_norm": 0.5}, 1, "data")
