"""own_weights: a loaded model's trained CPU weights move out of the safetensors file's copy-on-write mapping
before the first optimizer step writes them; the values, the tie and the frozen weights stay as they were."""
import sys

import pytest
import torch

from alignkit.engine.models import load_model, own_weights
from tiny import save_tiny

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")


def in_file(tensor, path):
    """Whether the tensor's memory lies in this process's mapping of the file at `path`."""
    address = tensor.data_ptr()
    for line in open("/proc/self/maps"):
        fields = line.split()
        if len(fields) >= 6 and fields[5] == str(path):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return True
    return False


def test_trained_weights_leave_the_file_and_keep_their_values_and_tie(tmp_path):
    folder = save_tiny(tmp_path / "tiny", tied=True)
    weights = folder / "model.safetensors"
    model = load_model(str(folder), "fp32", "cpu")
    frozen = model.model.layers[0].mlp.down_proj.weight
    frozen.requires_grad_(False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    params = list(model.parameters())
    assert all(in_file(p, weights.resolve()) for p in params)  # what transformers does: the file, mapped

    assert own_weights(model) == len(params) - 1
    assert not any(in_file(p, weights.resolve()) for p in params if p.requires_grad)
    assert in_file(frozen, weights.resolve())  # never written, so never copied
    assert model.lm_head.weight is model.model.embed_tokens.weight  # the tie is one parameter still
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    assert list(model.parameters()) == params  # the same Parameter objects (optimizer, hooks)
