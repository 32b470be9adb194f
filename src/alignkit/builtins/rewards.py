"""Built-in reward sources: a python callable (`module:function`, `file.py:function`) and a reward model.

The toy verifier (`toy`) is registered by alignkit.toy.plugin. Loaders live in alignkit.eval.rewards and import
torch only when a reward model is actually loaded.
"""
from __future__ import annotations

from alignkit import hookimpl
from alignkit.eval import rewards as R
from alignkit.registry import RewardSource


@hookimpl
def register_rewards(register):
    register(RewardSource("python", "A function fn(prompts, completions) -> list[float]: 'pkg.module:fn' or "
                          "'path/to/file.py:fn'.", R.is_python_spec, R.load_python_reward, priority=10))
    register(RewardSource("reward-model", "A sequence-classification model with one label (folder or Hub id); "
                          "score = its logit on prompt + completion.", R.is_reward_model_spec, R.load_reward_model,
                          priority=0))
