"""Reward functions for the online training tests, loaded as `path/to/online_rewards.py:function`."""


def likes_w7(prompts, completions):
    """1 when the completion says the word w7 (about one completion in eight of the untrained tiny model)."""
    return [float("w7" in completion.split()) for completion in completions]
