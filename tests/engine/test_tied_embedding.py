"""The tied embedding's gradient added row by row against autograd's dense one: the same gradients, no dense
(V, D) embedding backward, the padding row left out as nn.Embedding leaves it, and whole runs equal to their
--no-sparse-embedding-grad twins."""
import copy
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from alignkit.engine.tied_embedding import RowEmbeddingGrad  # noqa: E402
from test_train import metrics, train, weights  # noqa: E402
from tiny import PAD, VOCAB, save_tiny, tiny_model  # noqa: E402

ON = SimpleNamespace(sparse_embedding_grad=True)
ONE = SimpleNamespace(world=1, sharded=False)


class Ops(TorchDispatchMode):
    """The aten ops run inside the mode."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.__name__)
        return func(*args, **(kwargs or {}))


def ids_with_pads():
    torch.manual_seed(3)
    ids = torch.randint(3, VOCAB, (4, 10))
    ids[:, -3:] = PAD  # right padding, as batches have it
    ids[1, 2] = ids[0, 1]  # a token looked up twice
    return ids


def backward(model, ids, lm_head=True):
    with Ops() as ops:
        if lm_head:
            loss = model(input_ids=ids, labels=ids).loss
        else:  # only the lookup reaches the shared weight
            loss = model.model(input_ids=ids).last_hidden_state.pow(2).mean()
        loss.backward()
    return ops.names


@pytest.mark.parametrize("lm_head", [True, False])
def test_the_gradients_are_the_dense_ones_without_a_dense_embedding_backward(lm_head):
    plain = tiny_model(tied=True).train()
    fast = copy.deepcopy(plain)
    rows = RowEmbeddingGrad.where_exact(fast, ON, ONE)
    assert rows is not None
    seen = []  # the rows the hook adds, before the padding row is left out
    flush = rows.flush
    rows.flush = lambda: (seen.extend(rows.pending), flush())[-1]
    ids = ids_with_pads()
    plain_ops, fast_ops = backward(plain, ids, lm_head), backward(fast, ids, lm_head)
    assert "embedding_dense_backward.default" in plain_ops
    assert "embedding_dense_backward.default" not in fast_ops
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-5), name
    # the padding positions did get a gradient from above: adding them too would have changed row PAD
    looked_up, grads = seen[0]
    assert grads[looked_up == PAD].abs().sum() > 1e-4
    assert not rows.pending


def test_accumulated_backwards_add_every_lookup_once():
    plain = tiny_model(tied=True).train()
    fast = copy.deepcopy(plain)
    RowEmbeddingGrad.where_exact(fast, ON, ONE)
    ids = ids_with_pads()
    for model in (plain, fast):
        backward(model, ids[:2])
        backward(model, ids[2:])
        with torch.no_grad():  # a forward without a graph (a reference pass) adds nothing
            model(input_ids=ids)
    w_plain, w_fast = plain.lm_head.weight.grad, fast.lm_head.weight.grad
    assert torch.allclose(w_plain, w_fast, atol=1e-6, rtol=1e-5)


def test_a_deep_copy_looks_up_its_own_weight_densely():
    """A snapshot of the policy taken after the install (the toy world's start model, a plugin's copy) must keep
    its own weights: with a copied closure its lookups read the training weight (its exact KL moved 1.41 -> 1.33)."""
    model = tiny_model(tied=True).train()
    RowEmbeddingGrad.where_exact(model, ON, ONE)
    snapshot = copy.deepcopy(model)
    ids = ids_with_pads()
    before = snapshot(input_ids=ids).logits.detach()
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(3.0)  # training moves the original
    assert torch.equal(snapshot(input_ids=ids).logits.detach(), before)
    plain = tiny_model(tied=True).train()
    assert "embedding_dense_backward.default" in backward(snapshot, ids)  # the copy is a plain lookup
    backward(plain, ids)
    assert torch.allclose(snapshot.lm_head.weight.grad, plain.lm_head.weight.grad, atol=1e-6)


@pytest.mark.parametrize("case", ["untied", "off", "sharded", "frozen", "scaled subclass"])
def test_it_engages_only_on_a_plain_trainable_tied_lookup_with_whole_parameters(case):
    model = tiny_model(tied=case != "untied")
    cfg = SimpleNamespace(sparse_embedding_grad=case != "off")
    dist = SimpleNamespace(world=2, sharded=case == "sharded")  # DDP (2 whole copies) engages: see test_distributed
    if case == "frozen":
        model.get_input_embeddings().weight.requires_grad_(False)
    if case == "scaled subclass":  # e.g. Gemma's embedding, which scales its output in a forward of its own
        model.get_input_embeddings().__class__ = type("Scaled", (torch.nn.Embedding,), {})
    assert RowEmbeddingGrad.where_exact(model, cfg, dist) is None
    assert RowEmbeddingGrad.where_exact(tiny_model(tied=True), ON, ONE) is not None
    assert RowEmbeddingGrad.where_exact(tiny_model(tied=True), ON, SimpleNamespace(world=2, sharded=False))


@pytest.fixture(scope="module")
def tied_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-tied"), tied=True)


@pytest.mark.slow  # two whole training runs each
@pytest.mark.parametrize("setting", [dict(max_grad_norm=0.0),  # steps inside the backward: the hook comes first
                                     dict(max_grad_norm=1.0, grad_accum=2)])
def test_a_run_equals_its_dense_twin(tied_dir, tmp_path, monkeypatch, setting):
    fast = train(tied_dir, tmp_path / "fast", monkeypatch, batch_size=4, max_steps=3, **setting)
    plain = train(tied_dir, tmp_path / "plain", monkeypatch, batch_size=4, max_steps=3, sparse_embedding_grad=False,
                  **setting)
    wf, wp = weights(fast), weights(plain)
    assert (wf["model.embed_tokens.weight"] - weights(tied_dir)["model.embed_tokens.weight"]).abs().max() > 1e-3
    for k in wf:
        assert torch.allclose(wf[k], wp[k], atol=1e-6), k
    for a, b in zip(metrics(fast), metrics(plain)):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
