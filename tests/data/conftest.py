"""Fixtures for the data tests."""
import pytest

from data_helpers import CHAT_TEMPLATE, FIXTURES, build_tokenizer  # noqa: F401


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_tokenizer")
    build_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture
def fixtures():
    return FIXTURES
