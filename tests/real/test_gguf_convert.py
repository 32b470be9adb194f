"""The GGUF resource on a tiny GGUF file written here (fast lane; the real lane converts SmolLM2's file the same way).

A .gguf spec resolves, through the registry, to a transformers folder that computes the same logits as the model
the file was written from, converted once per file into $ALIGNKIT_CACHE/gguf/<key> and never left half-written.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alignkit.errors import UserError

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from tiny_gguf import write_tiny_gguf


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("ALIGNKIT_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(path of a tiny untied GGUF, the model written into it)."""
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def resolve(spec):
    from alignkit.plugins import resolve_resource

    return Path(resolve_resource(str(spec), "model"))


def logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]  # (T, V)


@pytest.mark.parametrize("tied", [False, True])
def test_converted_folder_computes_the_written_models_logits(tied, tmp_path, cache, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, original = write_tiny_gguf(tmp_path / f"tiny-{tied}.gguf", seed=3, tied=tied)
    folder = resolve(path)
    assert folder.parent == cache / "gguf" and (folder / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert model.config.tie_word_embeddings is tied and not hasattr(model.config, "quantization_config")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("The sky is blue.")["input_ids"]
    # F32 tensors, so exact up to float noise: the q/k permutation, norms and embeddings all mapped back
    assert torch.allclose(logits(model, ids), logits(original, ids), atol=1e-5)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                         tokenize=False)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.convert_tokens_to_ids("<|im_end|>") == 2
    err = capsys.readouterr().err
    assert err.count(f"converting {path.name} into a transformers folder at {folder} (once)") == 1


def test_converted_once_and_again_when_the_file_changes(tiny, tmp_path, cache, capsys):
    path = tmp_path / "copy.gguf"
    path.write_bytes(Path(tiny[0]).read_bytes())
    first = resolve(path)
    assert "converting copy.gguf" in capsys.readouterr().err
    assert resolve(path) == first and "converting" not in capsys.readouterr().err  # cached: no second line
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # an edited file is a new key
    second = resolve(path)
    assert second != first and "converting copy.gguf" in capsys.readouterr().err
    assert sorted(p.name for p in (cache / "gguf").iterdir()) == sorted([first.name, second.name])


def test_the_tokenizer_loader_goes_through_the_same_resource(tiny, cache):
    from alignkit.data.tokenize import load_tokenizer, tokenizer_hash

    tokenizer = load_tokenizer(str(tiny[0]))
    assert tokenizer.name_or_path == str(resolve(tiny[0]))
    assert tokenizer_hash(tokenizer) == tokenizer_hash(load_tokenizer(str(resolve(tiny[0]))))


def test_a_failed_conversion_leaves_no_folder_and_the_next_call_converts(tiny, cache, monkeypatch):
    from alignkit.builtins import gguf as module

    real_convert = module.convert

    def half_then_fail(path, out):
        (out / "config.json").write_text("{}")  # something half-written in the temporary folder
        raise RuntimeError("interrupted")

    monkeypatch.setattr(module, "convert", half_then_fail)
    with pytest.raises(RuntimeError):
        resolve(tiny[0])
    assert list((cache / "gguf").iterdir()) == []
    monkeypatch.setattr(module, "convert", real_convert)
    assert (resolve(tiny[0]) / "config.json").is_file()


@pytest.mark.slow
def test_a_killed_conversion_leaves_no_folder_under_its_key(tiny, cache):
    """SIGKILL after the weights are written, before the tokenizer: no `finally` runs, yet the key's folder does
    not exist (only a hidden temporary one), so the next call converts from scratch."""
    code = (
        "import os, signal, transformers\n"
        "from alignkit.plugins import resolve_resource\n"
        "def die(self, *a, **k): os.kill(os.getpid(), signal.SIGKILL)\n"
        "transformers.PreTrainedTokenizerBase.save_pretrained = die\n"
        f"resolve_resource({str(tiny[0])!r}, 'model')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    leftovers = list((cache / "gguf").iterdir())
    assert leftovers and all(p.name.startswith(".") and p.name.endswith(".tmp") for p in leftovers)
    assert any((p / "model.safetensors").is_file() for p in leftovers)  # it was killed mid-way, not before
    folder = resolve(tiny[0])
    assert (folder / "tokenizer.json").is_file() and not folder.name.startswith(".")


def test_without_the_gguf_package_one_line_says_what_to_install(tiny, cache, monkeypatch):
    from alignkit.builtins import gguf as module

    real = module.importlib.util.find_spec
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name))
    with pytest.raises(UserError) as err:
        resolve(tiny[0])
    assert "pip install gguf" in str(err.value) and "\n" not in str(err.value)


def test_a_missing_file_is_a_user_error(tmp_path, cache):
    with pytest.raises(UserError, match="does not exist"):
        resolve(tmp_path / "nowhere.gguf")


def test_other_specs_pass_through_and_plugins_lists_the_resource():
    from alignkit import plugins

    assert plugins.resolve_resource("some/folder", "model") == "some/folder"
    record = plugins.registry().get("resource", "gguf")
    assert record.kind == "model" and record.plugin == "alignkit.builtins.resources"
    assert record.matches("m/SmolLM2.Q4_1.gguf") and not record.matches("m/model.safetensors")
