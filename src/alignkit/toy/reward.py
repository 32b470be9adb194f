"""The toy world's true reward r(x, y) = content(x, y) · 0.9^(tail words), in [0, 1]; no torch.

content is the mean aptness of the response's adjectives for the prompt's thing (world.QUALITY: 1 apt, 0.5
partly, 0.3 a stretch, 0 wrong), halved when an adjective is repeated ("red and red"); the opener "it is" is neutral; each word of the filler tail ("indeed you know
for sure") multiplies the reward by 0.9. Text outside the grammar, or for a prompt outside the world, scores 0,
the lowest reward. The tail is the length trap: a padded apt answer (0.59 to 0.9) beats every wrong short answer
(0), so longer responses win more preference pairs than their reward deserves among apt answers, where the
crisp answer (1.0) is best.
"""
from __future__ import annotations

from alignkit.toy import world

TAIL_PENALTY = 0.9
REPEAT_PENALTY = 0.5


def score(prompt: str, response: str) -> float:
    """The true reward of one response text (surrounding whitespace and a trailing '<eos>' are ignored)."""
    thing = world.thing_of(prompt)
    text = response.strip()
    if text.endswith(world.EOS):
        text = text[: -len(world.EOS)].strip()
    parsed = world.parse(text) if thing is not None else None
    if parsed is None:
        return 0.0
    _, adjectives, tail = parsed
    quality = world.QUALITY[thing]
    content = sum(quality.get(a, 0.0) for a in adjectives) / len(adjectives)
    if len(adjectives) == 2 and adjectives[0] == adjectives[1]:
        content *= REPEAT_PENALTY
    return content * TAIL_PENALTY ** len(tail.split())


def reward_fn(prompts: list[str], completions: list[str]) -> list[float]:
    """Batched `score`, the callable the `toy` reward source returns."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    return [score(p, c) for p, c in zip(prompts, completions)]
