"""Reward sources: pick one by its SPEC string, and the two built-in loaders (python callable, reward model).

`load_reward(spec)` asks every registered reward source (highest priority first) whether it understands the spec
and loads the first that does. A reward is `fn(prompts: list[str], completions: list[str]) -> list[float]`, one
float per (prompt, completion) pair. Used by `alignkit eval --reward` and by online training. No torch at import.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path

from alignkit.errors import UserError

RewardFn = Callable[[list[str], list[str]], list[float]]

_MODULE_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_FILE_SPEC = re.compile(r"^(?P<path>.+\.py):(?P<fn>[A-Za-z_]\w*)$")


def load_reward(spec: str) -> RewardFn:
    """The reward function for a SPEC: 'toy', 'pkg.module:function', 'path/to/file.py:function', a model folder."""
    from alignkit import plugins

    sources = sorted(plugins.registry().all("reward"), key=lambda s: -s.priority)
    for source in sources:
        if source.matches(spec):
            return source.load(spec)
    raise UserError(f"no reward source understands '{spec}'; use toy, module:function, or a reward model folder")


# ---------------------------------------------------------------------------------------------------------------
# python: a function in an importable module or a .py file.


def is_python_spec(spec: str) -> bool:
    return bool(_FILE_SPEC.match(spec) or (_MODULE_SPEC.match(spec) and not spec.startswith("toy:")))


def load_python_reward(spec: str) -> RewardFn:
    file_match = _FILE_SPEC.match(spec)
    if file_match:
        path, name = Path(file_match["path"]), file_match["fn"]
        if not path.is_file():
            raise UserError(f"reward file '{path}' does not exist")
        module_name = f"alignkit_reward_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module  # lets dataclasses/pickling inside the file find their module
        module_spec.loader.exec_module(module)
    else:
        module_path, name = spec.split(":")
        try:
            module = importlib.import_module(module_path)
        except ModuleNotFoundError as exc:
            raise UserError(f"reward module '{module_path}' cannot be imported ({exc}); is it on PYTHONPATH?") \
                from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UserError(f"reward '{spec}': '{name}' is not a function in {module.__name__}")

    def reward(prompts: list[str], completions: list[str]) -> list[float]:
        scores = [float(s) for s in fn(list(prompts), list(completions))]
        if len(scores) != len(completions):
            raise UserError(f"reward '{spec}' returned {len(scores)} scores for {len(completions)} completions")
        return scores

    return reward


# ---------------------------------------------------------------------------------------------------------------
# reward-model: an AutoModelForSequenceClassification with one label; score = that label's logit.


def is_reward_model_spec(spec: str) -> bool:
    """A local folder with a config.json, or something shaped like a Hub id ('org/name')."""
    if ":" in spec:
        return False
    path = Path(spec)
    if path.is_dir():
        return (path / "config.json").is_file()
    return bool(re.match(r"^[\w.-]+/[\w.-]+$", spec))


def load_reward_model(spec: str, batch_size: int = 16) -> RewardFn:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec)
        model = AutoModelForSequenceClassification.from_pretrained(spec)
    except OSError as exc:
        raise UserError(f"cannot load reward model '{spec}': {str(exc).splitlines()[0]}") from None
    if model.config.num_labels != 1:
        raise UserError(f"reward model '{spec}' has {model.config.num_labels} labels; a reward model has one")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id  # sequence classifiers read the last non-pad token
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()

    @torch.no_grad()
    def reward(prompts: list[str], completions: list[str]) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(prompts), batch_size):
            texts = [p + c for p, c in zip(prompts[start:start + batch_size], completions[start:start + batch_size])]
            batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True).to(device)
            logits = model(**batch).logits  # (B, 1)
            scores += logits[:, 0].float().cpu().tolist()
        return scores

    return reward
