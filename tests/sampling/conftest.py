"""Fixtures for the sampling tests; helpers live in sampling_helpers (conftest names clash across folders)."""
import pytest

from sampling_helpers import FixedModel, FakeTokenizer, tiny_tokenizer, tiny_llama  # noqa: F401


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def llamas(tokenizer):
    """Two different tiny random models sharing the tokenizer: (instruct, base). initializer_range 0.3 makes
    their next-token distributions peaked and different, unlike the near-uniform default."""
    return tiny_llama(1, len(tokenizer)), tiny_llama(2, len(tokenizer))


@pytest.fixture
def saved_models(tmp_path, tokenizer, llamas):
    """Both tiny models saved as loadable folders: {"instruct": path, "base": path}."""
    paths = {}
    for name, model in zip(("instruct", "base"), llamas):
        path = tmp_path / name
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths[name] = str(path)
    return paths
