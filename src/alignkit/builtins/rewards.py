"""Built-in reward sources: a python callable (`module:function`, `file.py:function`) and a reward model.

A reward is `fn(prompts: list[str], completions: list[str]) -> list[float]`, one float per (prompt, completion)
pair; `alignkit.plugins.load_reward(spec)` picks the source whose `matches` accepts the spec. The toy verifier
(`toy`) is registered by alignkit.toy.plugin. torch is imported only when a reward model is actually loaded.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

from alignkit import hookimpl
from alignkit.errors import UserError
from alignkit.registry import RewardSource

RewardFn = Callable[[list[str], list[str]], list[float]]

_MODULE_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_FILE_SPEC = re.compile(r"^(?P<path>.+\.py):(?P<fn>[A-Za-z_]\w*)$")


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
        where = file_match["path"] if file_match else module.__name__
        raise UserError(f"reward '{spec}': '{name}' is not a function in {where}")
    shape = f"reward '{spec}' must take (prompts, completions) and return one number per completion"
    wrong_call = _call_problem(fn)
    if wrong_call:  # found now, before any model loads or any sample is drawn
        raise UserError(f"{shape}; {wrong_call}")

    def reward(prompts: list[str], completions: list[str]) -> list[float]:
        out = fn(list(prompts), list(completions))
        if isinstance(out, (str, bytes, dict)) or not hasattr(out, "__iter__"):
            raise UserError(f"{shape}; it returned {_what(out)}")
        items = list(out)  # a generator is read once
        bad = [s for s in items if not _is_number(s)]
        if bad:
            raise UserError(f"{shape}; it returned a {type(out).__name__} holding {_what(bad[0])}")
        scores = [float(s) for s in items]
        if len(scores) != len(completions):
            raise UserError(f"{shape}; it returned {len(scores)} number{'' if len(scores) == 1 else 's'} for "
                            f"{len(completions)} completions")
        return check_finite(f"reward '{spec}'", scores, completions, "rewards must be finite numbers")

    return reward


def check_finite(who: str, scores: list[float], completions: list[str], fix: str) -> list[float]:
    """scores, or a UserError naming the first non-finite one: a NaN reward would make every advantage and the
    eval's means NaN without a word."""
    bad_index = next((i for i, s in enumerate(scores) if not math.isfinite(s)), None)
    if bad_index is not None:
        raise UserError(f"{who} returned {scores[bad_index]} for completion {bad_index} "
                        f"({completions[bad_index][:40]!r}); {fix}")
    return scores


def _call_problem(fn: Callable) -> str | None:
    """Why fn cannot be called as fn(prompts, completions), or None (also when Python cannot tell: a builtin)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind([], [])
        return None
    except TypeError:
        pass
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        return f"it takes {len(positional)} argument{'' if len(positional) == 1 else 's'}"
    required = [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return f"it needs {len(required)} arguments ({', '.join(required)})"


def _is_number(value: object) -> bool:
    if isinstance(value, (str, bytes)):  # float("1") works, but a score given as text is a bug to report
        return False
    try:
        float(value)  # type: ignore[arg-type]
        return True
    except (TypeError, ValueError):
        return False


def _what(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


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
        return check_finite(f"reward model '{spec}'", scores, completions,
                            "its scores must be finite (a broken checkpoint, or an overflow in its dtype)")

    return reward


@hookimpl
def register_rewards(register):
    register(RewardSource("python", "A function fn(prompts, completions) -> list[float]: 'pkg.module:fn' or "
                          "'path/to/file.py:fn'.", is_python_spec, load_python_reward, priority=10))
    register(RewardSource("reward-model", "A sequence-classification model with one label (folder or Hub id); "
                          "score = its logit on prompt + completion.", is_reward_model_spec, load_reward_model,
                          priority=0))
