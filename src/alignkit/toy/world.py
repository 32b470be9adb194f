"""The toy world's prompts, vocabulary and enumerable response space (no torch; see docs/toy-world.md).

A prompt asks to describe a thing: `describe the apple :`. A response is one phrase of a tiny grammar

    [opener] ADJ [and ADJ] [tail]          opener: "" | "it is"
                                           tail:   "" | "indeed" | "indeed you know" | "indeed you know for sure"

(the two adjectives may repeat, which the reward halves). That is 10 + 10·10 = 110 adjective phrases × 2 openers
× 4 tails = 880 responses per prompt, of 1 to 10 words (2 to 11 tokens with EOS). Every response of every prompt is in
`responses(prompt)`; the reward in `alignkit.toy.reward` grades them.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

ADJECTIVES = ("red", "green", "yellow", "white", "blue", "sweet", "cold", "hot", "bright", "soft")
OPENERS = ("", "it is")
TAILS = ("", "indeed", "indeed you know", "indeed you know for sure")

# How well each adjective describes each thing (1 = apt, 0.5 = partly, 0.3 = a stretch; absent = wrong).
QUALITY: dict[str, dict[str, float]] = {
    "apple": {"red": 1.0, "green": 1.0, "sweet": 1.0, "yellow": 0.5, "soft": 0.3},
    "sky": {"blue": 1.0, "bright": 1.0, "white": 0.5, "cold": 0.3},
    "snow": {"white": 1.0, "cold": 1.0, "soft": 1.0, "bright": 0.5},
    "fire": {"hot": 1.0, "red": 1.0, "bright": 1.0, "yellow": 0.5},
    "grass": {"green": 1.0, "soft": 1.0, "yellow": 0.3, "cold": 0.3},
    "sun": {"hot": 1.0, "bright": 1.0, "yellow": 1.0, "white": 0.5, "red": 0.3},
    "ice": {"cold": 1.0, "white": 1.0, "blue": 0.5, "bright": 0.3},
    "honey": {"sweet": 1.0, "yellow": 1.0, "soft": 0.5, "hot": 0.3},
}
THINGS = tuple(QUALITY)
PROMPT_TEMPLATE = "describe the {thing} :"
PROMPTS = tuple(PROMPT_TEMPLATE.format(thing=t) for t in THINGS)

# Special tokens of the toy tokenizer; the chat-template role tokens exist so that chat data can be rendered too.
PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
ROLE_TOKENS = ("<system>", "<user>", "<assistant>")
SPECIAL_TOKENS = (PAD, EOS, BOS, UNK, *ROLE_TOKENS)
CHAT_TEMPLATE = (
    "{% for message in messages %}<{{ message['role'] }}> {{ message['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def vocabulary() -> list[str]:
    """Every token, specials first (so <pad> is id 0 and <eos> id 1), in a fixed order."""
    words: list[str] = []
    for text in (*PROMPTS, *ADJECTIVES, "and", *OPENERS, *TAILS):
        for word in text.split():
            if word not in words:
                words.append(word)
    return [*SPECIAL_TOKENS, *words]


def thing_of(prompt: str) -> str | None:
    """'describe the apple :' -> 'apple'; None for a prompt outside the world."""
    words = prompt.split()
    if len(words) == 4 and words[:2] == ["describe", "the"] and words[3] == ":" and words[2] in QUALITY:
        return words[2]
    return None


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


@lru_cache(maxsize=None)
def all_responses() -> tuple[str, ...]:
    """The 880 responses of the grammar, the same for every prompt, in a fixed order."""
    phrases = [a for a in ADJECTIVES] + [f"{a} and {b}" for a in ADJECTIVES for b in ADJECTIVES]
    return tuple(_join(o, p, t) for o in OPENERS for p in phrases for t in TAILS)


def responses(prompt: str) -> tuple[str, ...]:
    """The enumerated response set of a prompt of the world (ValueError for another prompt)."""
    if thing_of(prompt) is None:
        raise ValueError(f"'{prompt}' is not a toy-world prompt; the prompts are {list(PROMPTS)}")
    return all_responses()


def parse(response: str) -> tuple[str, tuple[str, ...], str] | None:
    """(opener, adjectives, tail) of a response of the grammar, or None for any other text."""
    words = response.split()
    opener = ""
    if words[:2] == ["it", "is"]:
        opener, words = "it is", words[2:]
    tail = ""
    for t in sorted(TAILS, key=len, reverse=True):
        if t and len(words) > len(t.split()) and words[-len(t.split()):] == t.split():
            tail, words = t, words[: -len(t.split())]
            break
    if len(words) == 1 and words[0] in ADJECTIVES:
        return opener, (words[0],), tail
    if len(words) == 3 and words[1] == "and" and words[0] in ADJECTIVES and words[2] in ADJECTIVES:
        return opener, (words[0], words[2]), tail
    return None


# A response follows its prompt after one space, as in toy:prefs ({"prompt": "describe the ice :", "chosen":
# " cold and white"}): plain-text rows are tokenized as prompt + response joined as written (alignkit.data.tokenize).
SEPARATOR = " "


def encode(tokenizer: Any, prompt: str, responses: list[str] | tuple[str, ...]) -> tuple[list[int], list[list[int]]]:
    """(prompt ids, each response's ids ending with EOS) by the tokenization rules that prepare, decode and online
    training share (alignkit.data.tokenize), so exact figures are those of the ids a run trains and samples."""
    from alignkit.data.tokenize import encode_example

    encoded = encode_example(tokenizer, prompt, [SEPARATOR + r for r in responses], template="plain")
    return encoded.prompt_ids, encoded.response_ids


def describe() -> dict[str, Any]:
    """The whole world as plain data (written to artifacts/world.json by the builder)."""
    from alignkit.toy import reward

    return {
        "prompts": list(PROMPTS),
        "grammar": "[opener] ADJ [and ADJ] [tail]",
        "adjectives": list(ADJECTIVES),
        "openers": list(OPENERS),
        "tails": list(TAILS),
        "quality": QUALITY,
        "responses_per_prompt": len(all_responses()),
        "reward": reward.__doc__.strip().splitlines()[0],
        "tail_penalty_per_word": reward.TAIL_PENALTY,
        "repeat_penalty": reward.REPEAT_PENALTY,
        "vocabulary": vocabulary(),
        "chat_template": CHAT_TEMPLATE,
    }
