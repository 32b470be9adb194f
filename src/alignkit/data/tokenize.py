"""Tokenization: the one place where prompts and responses become token ids.

`prepare`, `decode`, online training and the toy world's exact evaluation all call these functions, so the prompt
ids a model is trained on are the ids it is sampled from. The rules (docs/data.md, "Tokenization"), as TRL 1.16's
DPOTrainer applies them:

- conversational rows (a prompt that is a list of messages, or any row under --template chat): the prompt is
  rendered with the chat template and the generation prompt; each response is what follows it when
  `prompt + response` is rendered and tokenized whole. The template closes the turn (`<|im_end|>`, `<|eot_id|>`,
  `</s>`, `<end_of_turn>`): no EOS is appended. Only a template that closes the assistant turn with no special
  token at all gets EOS appended (with one warning), or the model could never learn to stop.
- plain-text rows: the prompt keeps the tokenizer's own special tokens (BOS where it adds one); the response is
  what follows the prompt when `prompt + response + EOS` is tokenized whole, joined exactly as written (so a
  response usually starts with a space: {"prompt": "The sky is", "chosen": " blue."}).
- both: the response starts where the prompt's ids and `prompt + response`'s ids first differ (TRL's common-prefix
  rule). When that is before the end of the prompt (a template that renders the prompt differently alone, or a
  token merging across the boundary), the training prompt is that shorter prefix and one warning says so.

Nothing here imports torch; transformers is imported only to load a tokenizer.
"""
from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alignkit.errors import UserError

Prompt = Any  # str, or a list of {role, content} messages
TEMPLATES = ("auto", "chat", "plain")


# ----------------------------------------------------------------------------------------------------------
# Loading and identity


def load_tokenizer(spec: str) -> Any:
    """The tokenizer of a model spec (a toy name, a folder, a .gguf file, a Hub id), with pad = EOS if it has none."""
    from alignkit import plugins

    path = plugins.resolve_resource(spec, "model")
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a tokenizer from '{spec}': {str(exc).splitlines()[0]}") from exc
    if tokenizer.pad_token_id is None:  # decoder-only models often ship none; EOS is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tokenizer_hash(tokenizer: Any) -> str:
    """A short hash of the tokenizer's vocabulary (added tokens included), chat template and EOS token.

    Two tokenizers with the same hash turn the same text into the same ids, so a prepared data set can be reused.
    """
    h = hashlib.sha256()
    h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    template = getattr(tokenizer, "chat_template", None) or ""
    h.update(b"\0" + (template if isinstance(template, str) else json.dumps(template, sort_keys=True)).encode())
    h.update(b"\0" + str(tokenizer.eos_token).encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------
# Rendering choices


def is_messages(value: Any) -> bool:
    """A prompt or response given as a list of {role, content} messages (canonical rows hold nothing else)."""
    return isinstance(value, list)


def uses_chat(prompt: Prompt, template: str) -> bool:
    """auto: the chat template for message lists, plain text for strings; chat / plain force one."""
    if template not in TEMPLATES:
        raise UserError(f"template must be one of {', '.join(TEMPLATES)}, got {template!r}")
    return template == "chat" or (template == "auto" and is_messages(prompt))


def _as_messages(value: Any, role: str) -> list[dict]:
    return value if is_messages(value) else [{"role": role, "content": value}]


def plain_text(prompt: Prompt) -> str:
    """A prompt as plain text: a string as is; messages as 'role: content' lines ending in 'assistant: '."""
    if isinstance(prompt, str):
        return prompt
    return "".join(f"{m['role']}: {m['content']}\n" for m in prompt) + "assistant: "


def response_text(response: Any) -> str:
    """The text of a response: a string as is, messages' contents joined."""
    return response if isinstance(response, str) else "".join(m["content"] for m in response)


def _check_chat(tokenizer: Any) -> None:
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or "this model"
        raise UserError(f"the tokenizer of {name} has no chat template, which conversational rows need; use a chat "
                        "model's tokenizer, or --template plain to render messages as 'role: content' text")


def _chat_ids(tokenizer: Any, messages: list[dict], generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True,
                                        return_dict=True)["input_ids"]
    return list(ids[0] if ids and isinstance(ids[0], list) else ids)


def _text_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    # The tokenizer's own special tokens (BOS where it adds one), as a plain `tokenizer(text)` gives them.
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]] if texts else []


# ----------------------------------------------------------------------------------------------------------
# Prompts (decode, online training) and examples (prepare, exact evaluation)


def encode_prompt(tokenizer: Any, prompt: Prompt, template: str = "auto") -> list[int]:
    """The ids a model is sampled from for `prompt`: the same ids `encode_example` trains on (see the rules)."""
    return encode_prompts(tokenizer, [prompt], template)[0]


def encode_prompts(tokenizer: Any, prompts: Sequence[Prompt], template: str = "auto") -> list[list[int]]:
    chat = [uses_chat(p, template) for p in prompts]
    if any(chat):
        _check_chat(tokenizer)
    plain = _text_ids(tokenizer, [plain_text(p) for p, c in zip(prompts, chat) if not c])
    out, j = [], 0
    for prompt, use_chat in zip(prompts, chat):
        if use_chat:
            out.append(_chat_ids(tokenizer, _as_messages(prompt, "user"), generation_prompt=True))
        else:
            out.append(plain[j])
            j += 1
    return out


@dataclass
class Encoded:
    """One row's ids: the prompt, and each response as it follows the prompt (EOS or the turn's end included)."""

    prompt_ids: list[int]
    response_ids: list[list[int]]
    chat: bool                      # rendered with the chat template
    diverged: str | None = None     # the prompt's tail cut by the common-prefix rule, as text (None: no cut)


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_example(tokenizer: Any, prompt: Prompt, responses: Sequence[Any], template: str = "auto") -> Encoded:
    """Prompt and response ids of one row (see the module's rules)."""
    return encode_examples(tokenizer, [prompt], [responses], template)[0]


def encode_examples(tokenizer: Any, prompts: Sequence[Prompt], responses: Sequence[Sequence[Any]],
                    template: str = "auto") -> list[Encoded]:
    """`encode_example` for many rows; plain-text rows are tokenized in one batch."""
    chat = [uses_chat(p, template) for p in prompts]
    if any(chat):
        _check_chat(tokenizer)
    eos = tokenizer.eos_token or ""
    plain_rows = [i for i, c in enumerate(chat) if not c]
    texts = []
    for i in plain_rows:
        text = plain_text(prompts[i])
        texts.append(text)
        for r in responses[i]:
            body = text + response_text(r)
            texts.append(body if body.endswith(eos) else body + eos)  # TRL adds EOS unless the text ends with it
    plain_ids = iter(_text_ids(tokenizer, texts))
    turn_end: set[int] | None = None  # the template's end-of-turn tokens, found once per call if a chat row needs them
    plain_out = {}
    for i in plain_rows:
        prompt_ids = next(plain_ids)
        fulls = [_ending_in_eos(next(plain_ids), tokenizer) for _ in responses[i]]
        plain_out[i] = _split(tokenizer, prompt_ids, fulls, chat=False)
    out = []
    for i, (prompt, use_chat) in enumerate(zip(prompts, chat)):
        if not use_chat:
            out.append(plain_out[i])
            continue
        messages = _as_messages(prompt, "user")
        prompt_ids = _chat_ids(tokenizer, messages, generation_prompt=True)
        fulls = [_chat_ids(tokenizer, messages + _as_messages(r, "assistant"), generation_prompt=False)
                 for r in responses[i]]
        example = _split(tokenizer, prompt_ids, fulls, chat=True)
        if turn_end is None:
            turn_end = end_of_turn_ids(tokenizer)
        if not turn_end and tokenizer.eos_token_id is not None:
            _append_eos(tokenizer, example)
        out.append(example)
    return out


def _append_eos(tokenizer: Any, example: Encoded) -> None:
    """A template that closes the assistant turn with no special token: end each response with EOS (once said)."""
    eos = tokenizer.eos_token_id
    example.response_ids = [ids if eos in ids else ids + [eos] for ids in example.response_ids]
    name = getattr(tokenizer, "name_or_path", "") or "this tokenizer"
    warn_once("chat-no-turn-end", f"the chat template of {name} closes the assistant turn with no special token; "
              f"responses end with EOS ({tokenizer.eos_token}) so that the model learns to stop")


def _ending_in_eos(ids: list[int], tokenizer: Any) -> list[int]:
    # A tokenizer whose EOS text does not map back to its id (rare) still ends every plain response with EOS.
    eos = tokenizer.eos_token_id
    return ids if eos is None or (ids and ids[-1] == eos) else ids + [eos]


def _split(tokenizer: Any, prompt_ids: list[int], fulls: list[list[int]], chat: bool) -> Encoded:
    cut = min([common_prefix_length(prompt_ids, full) for full in fulls], default=len(prompt_ids))
    diverged = tokenizer.decode(prompt_ids[cut:]) if cut < len(prompt_ids) else None
    return Encoded(prompt_ids[:cut], [full[cut:] for full in fulls], chat, diverged)


# ----------------------------------------------------------------------------------------------------------
# Where a sampled response ends


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    """The special tokens a chat template closes an assistant turn with (e.g. <|im_end|>, <|eot_id|>,
    <end_of_turn>): the first special token after the content of a rendered assistant message. Empty without a
    chat template. Sampling a chat prompt stops on these as on EOS."""
    if not getattr(tokenizer, "chat_template", None):
        return set()
    marker = "alignkit"
    try:
        ids = _chat_ids(tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}],
                        generation_prompt=False)
    except Exception:  # a template that refuses this two-message conversation names no turn end
        return set()
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special |= {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)}
    text = ""
    for n, token in enumerate(ids):  # walk until the marker has been rendered, then take the next special token
        text += tokenizer.decode([token])
        if marker in text:
            return {next((t for t in ids[n + 1:] if t in special), None)} - {None}
    return set()


# ----------------------------------------------------------------------------------------------------------
# Warnings that are said once per process


@dataclass
class _Once:
    said: set[str] = field(default_factory=set)

    def warn(self, key: str, message: str) -> None:
        if key not in self.said:
            self.said.add(key)
            print(f"warning: {message}", file=sys.stderr)


warn_once = _Once().warn


def divergence_warning(example: Encoded) -> str:
    return ("the chat template renders the prompt differently alone than followed by a response"
            if example.chat else "the prompt's last tokens merge with the response's first tokens") + \
        (f": {example.diverged!r} is left out of the training prompt, so the model trains on a context that "
         "differs from the one it is sampled from. Use a template that renders the prompt the same way in both "
         "cases, or end the prompt on a token boundary (e.g. with a space or a newline).")
