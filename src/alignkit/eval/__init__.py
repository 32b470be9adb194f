"""Evaluation: metrics per prompt over its samples, aggregated over prompts with bootstrap intervals.

The metric contract (`alignkit.registry.Metric.compute`): `compute(samples: PromptSamples) -> float | None`,
called once per prompt. Return None when the metric is undefined for that prompt (e.g. self-BLEU of one sample);
the prompt is then left out of that metric's mean. `Metric.needs` names extra inputs the runner must provide:
'reward' (`samples.rewards`, from --reward) and 'embedder' (`samples.embeddings`, from --embedder); a metric whose
needs are not met is skipped with a note in the report. Runner: `alignkit.eval.run.run(EvalConfig)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PromptSamples:
    """What a metric sees: one prompt and its k samples."""

    prompt: str | None
    texts: list[str]                      # (k,)
    num_tokens: list[int | None]          # (k,) response tokens from decode, None where the file has none
    rewards: list[float] | None = None    # (k,) when --reward is given
    embeddings: Any = None                # (k, d) numpy array when --embedder is given
    pass_threshold: float = 1.0           # a reward >= this counts as correct for pass@k


__all__ = ["PromptSamples"]
