"""One batched sampling loop with a KV cache per model; decoders shape each step's distribution.

    from alignkit.engine.sample import SamplingSettings, encode_prompts, sample
    out = sample({"policy": model}, tokenizer, encode_prompts(tokenizer, ["2+2="]), SampleDecoder(),
                 SamplingSettings(top_p=0.9), max_new_tokens=32, seed=0)

The decoder contract (what `Decoder.make(options)` returns, see alignkit.registry.Decoder):

    extra_models: dict[str, str]
        role -> model spec of every model the decoder needs besides the policy, e.g. {"base": "toy:base"}.
        The caller loads them; all models must share the policy's tokenizer (`check_vocabularies`).
    step(logits: dict[str, Tensor], settings: SamplingSettings) -> Tensor
        logits: role -> (B, V) float logits of this step's next token, "policy" always present.
        Returns (B, V) log-probs of the distribution to sample from: -inf outside the support, the rest summing
        to one. settings carries temperature, top_k, top_p and min_p.

The loop owns everything else: left-padded batches, each model's KV cache (all models advance in lockstep on the
same tokens), drawing tokens with a seeded torch.Generator, and stopping each row on EOS (or the chat template's
end of turn), a stop string or max_new_tokens.

Three fast paths, each beside its plain twin (tests/sampling/test_fast_paths.py and test_decode_step.py check that
they agree):
- share_prompts: rows with the same prompt (a prompt's samples) prefill it once and copy its KV cache rows;
  the same tokens for a seed as every row prefilling its own copy.
- draw="inverse-cdf": one uniform per row against the cumulative sum of its probabilities, instead of
  torch.multinomial's exponential race over the whole vocabulary (one random number per row, not V). The same
  distribution, other samples for a seed than draw="multinomial".
- fast_step: after the prefill, a Llama or Qwen2 model steps through alignkit.engine.decode_step (its own
  modules without the forward's per-call glue, keys and values in buffers sized once): the same logits bit for bit.

A model is called as model(input_ids=, attention_mask=, position_ids=, use_cache=True, and its cache; on the
first step also logits_to_keep=1 where its forward takes it) and must return an object with `.logits` (B, T, V).
The cache is a `transformers.DynamicCache` the loop makes per model and the model fills in place; it is passed as
`cache=` where the model's forward takes that name (transformers ≥ 5.2x, where `past_key_values=` is deprecated
and goes in 5.40) and as `past_key_values=` otherwise (older releases, PEFT wrappers pass it through). A mock that
ignores the cache works as long as its logits do not depend on the prefix.

Prompt ids come from alignkit.data.tokenize.encode_prompts, the same ids training uses. The returned log-prob of
a sample sums the sampled tokens' log-probs under the sampling distribution (after truncation), EOS included.
"""
from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from alignkit.engine.decode_step import DecodeStep
from alignkit.errors import UserError


@dataclass(frozen=True)
class SamplingSettings:
    """What every decoder's step sees: the distribution-shaping flags of `alignkit decode`."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0


@dataclass
class Samples:
    """One entry per sampled sequence, in the order of the prompt ids given."""

    token_ids: list[list[int]] = field(default_factory=list)  # response tokens, EOS included when sampled
    texts: list[str] = field(default_factory=list)  # decoded response, without EOS and without the stop string
    finish_reasons: list[str] = field(default_factory=list)  # "eos" | "stop" | "length"
    logprobs: list[float] = field(default_factory=list)  # sum of sampled tokens' log-probs under the sampler

    def extend(self, other: Samples) -> None:
        self.token_ids += other.token_ids
        self.texts += other.texts
        self.finish_reasons += other.finish_reasons
        self.logprobs += other.logprobs


# ----------------------------------------------------------------------------------------------------------
# Prompts -> token ids


def encode_prompts(tokenizer: Any, prompts: Sequence[str | list[dict]], template: str = "auto") -> list[list[int]]:
    """Token ids of each prompt: alignkit.data.tokenize's rules, the ids a model trains on for the same prompt."""
    from alignkit.data.tokenize import encode_prompts as encode

    return encode(tokenizer, prompts, template)


def check_vocabularies(tokenizer: Any, others: dict[str, Any]) -> None:
    """Models stepping in lockstep must share one vocabulary; name the first token that differs."""
    mine = {i: t for t, i in tokenizer.get_vocab().items()}
    for role, other in others.items():
        theirs = {i: t for t, i in other.get_vocab().items()}
        for i in range(max(len(mine), len(theirs), max(mine, default=-1) + 1, max(theirs, default=-1) + 1)):
            if mine.get(i) != theirs.get(i):
                raise UserError(f"the {role} model's tokenizer differs from the policy's at token id {i}: "
                                f"{mine.get(i)!r} vs {theirs.get(i)!r}; both models must share one vocabulary")


def eos_ids(tokenizer: Any, model: Any = None) -> set[int]:
    """Where a sample ends: the tokenizer's EOS, the chat template's end-of-turn token (Gemma's <end_of_turn> is
    not its EOS) and, when it has one, the model's generation config."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    ids |= _end_of_turn_ids(tokenizer)
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(extra) if isinstance(extra, (list, tuple)) else ({extra} if extra is not None else set())
    return ids


_END_OF_TURN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> (chat template, its ids)


def _end_of_turn_ids(tokenizer: Any) -> frozenset[int]:
    """alignkit.data.tokenize.end_of_turn_ids, remembered per tokenizer and chat template: it renders the template,
    0.5 ms on the toy world's tokenizer, and online training samples a batch every step."""
    from alignkit.data.tokenize import end_of_turn_ids

    template = getattr(tokenizer, "chat_template", None)
    try:
        known = _END_OF_TURN.get(tokenizer)
    except TypeError:  # a tokenizer that takes no weak reference: render it every time
        return frozenset(end_of_turn_ids(tokenizer))
    if known is None or known[0] != template:
        known = (template, frozenset(end_of_turn_ids(tokenizer)))
        _END_OF_TURN[tokenizer] = known
    return known[1]


def cache_argument(model: Any) -> str:
    """The keyword a model's forward takes its KV cache under: `cache` (transformers ≥ 5.2x) or `past_key_values`
    (older releases; wrappers such as PEFT's that only pass **kwargs through are asked about the model inside)."""
    return "cache" if accepts(model, "cache") else "past_key_values"


def new_cache(model: Any) -> Any:
    """An empty KV cache the model fills in place (None for a model that is not a transformers model)."""
    try:
        from transformers import DynamicCache
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    config = getattr(model, "config", None)
    try:
        return DynamicCache(config=config) if config is not None else DynamicCache()
    except TypeError:  # releases whose DynamicCache takes no config
        return DynamicCache()


def accepts(model: Any, name: str) -> bool:
    """Whether the model's forward (or, for a PEFT wrapper, the model inside it) takes keyword `name`."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    forward = inner.forward
    try:  # a bound method's function: the same for every model of a class, unless its forward was replaced
        return _takes(getattr(forward, "__func__", forward), name)
    except TypeError:  # an unhashable callable
        return _takes.__wrapped__(forward, name)


@functools.lru_cache(maxsize=256)
def _takes(forward: Any, name: str) -> bool:
    """Whether `forward` has a parameter `name` (inspect.signature costs ~0.1 ms; sampling asks twice a batch)."""
    import inspect

    try:
        return name in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False


def row_generator(seed: int, prompt_index: int, sample_id: int, device: Any) -> torch.Generator:
    """A generator per (prompt, sample): a row draws the same tokens whichever batch, process or batch size it
    runs in, and sample s of a prompt is the same whatever --num-samples is."""
    import hashlib

    digest = hashlib.blake2b(f"{seed}:{prompt_index}:{sample_id}".encode(), digest_size=8).digest()
    generator = torch.Generator(device=device)
    generator.manual_seed(int.from_bytes(digest, "little") >> 1)  # 63 bits: manual_seed takes a signed int64
    return generator


def draw_tokens(logprobs: torch.Tensor, generators: Sequence[torch.Generator], draw: str) -> torch.Tensor:
    """(B, V) log-probs -> (B, 1) one token per row; generators: one per group of B / len(generators) rows."""
    B, V = logprobs.shape
    group = B // len(generators)
    if draw == "multinomial":  # the plain twin: torch's exponential race, V random numbers a row
        probs = logprobs.exp()  # (B, V)
        return torch.cat([torch.multinomial(probs[g * group:(g + 1) * group], 1, generator=gen)
                          for g, gen in enumerate(generators)])  # (B, 1): each group from its own generator
    if draw != "inverse-cdf":
        raise ValueError(f"unknown draw {draw!r}: multinomial or inverse-cdf")
    # Inverse CDF in float64 (a float32 running sum over 49k tokens would blur the rare ones): the first token
    # whose cumulative probability exceeds u * total. A token of probability 0 adds nothing to the sum, so it can
    # never be the first to exceed it.
    u = torch.cat([torch.rand(group, generator=gen, dtype=torch.float64, device=gen.device)
                   for gen in generators]).to(logprobs.device)  # (B,) in [0, 1)
    cdf = logprobs.double().exp().cumsum(dim=-1)  # (B, V)
    token = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).clamp(max=V - 1)  # (B, 1)
    picked = logprobs.gather(-1, token)  # (B, 1)
    if not bool(picked.isfinite().all()):
        for row in torch.nonzero(~picked.isfinite()).flatten().tolist():
            # u * total rounded up to the total (probability ~1e-16): the last token of the support
            token[row, 0] = torch.nonzero(logprobs[row].isfinite()).max()
    return token


def share_rows(prompt_ids: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """(first row of each distinct prompt, in order; for each row, the index of its prompt among those)."""
    first: dict[tuple[int, ...], int] = {}
    index = [first.setdefault(tuple(ids), len(first)) for ids in prompt_ids]
    rows = [0] * len(first)
    for row, i in reversed(list(enumerate(index))):
        rows[i] = row
    return rows, index


def make_generator(seed: int, batch_index: int, device: Any) -> torch.Generator:
    """A generator per batch: batch i draws the same tokens whichever batches ran before it (resume-safe)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed * 1_000_003 + batch_index)
    return generator


# ----------------------------------------------------------------------------------------------------------
# The loop


@torch.no_grad()
def sample_batch(models: dict[str, Any], tokenizer: Any, prompt_ids: Sequence[Sequence[int]], decoder: Any,
                 settings: SamplingSettings, *, max_new_tokens: int,
                 generator: torch.Generator | Sequence[torch.Generator], stop: Sequence[str] | None = None,
                 use_cache: bool = True, all_done: Callable[[bool], bool] | None = None,
                 share_prompts: bool = False, draw: str = "multinomial", fast_step: bool = False) -> Samples:
    """Sample one continuation per prompt, all rows together. use_cache=False recomputes the prefix each step.

    generator: one for the whole batch, or one per group of rows (len(prompt_ids) / len(generators) consecutive
    rows each, e.g. a prompt's G samples), so that a group's draws do not depend on the rows beside it.
    all_done(local_done) -> bool: for models whose forward is a collective step (sharded across processes), go on
    until every process is done; None stops as soon as this batch is.
    share_prompts: prefill each distinct prompt once and copy its cache rows (with use_cache only).
    draw: "multinomial" (plain) or "inverse-cdf" (fast), see draw_tokens.
    fast_step: after the prefill, models that alignkit.engine.decode_step supports step without their forward's
    glue (the same logits bit for bit); the others, and every model with fast_step=False, step through forward.
    """
    generators = [generator] if isinstance(generator, torch.Generator) else list(generator)
    if len(prompt_ids) % len(generators):
        raise ValueError(f"{len(prompt_ids)} rows do not split into {len(generators)} generator groups")
    policy = models["policy"]
    device = next(policy.parameters()).device
    eos = eos_ids(tokenizer, policy)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos, default=0)
    eos_tensor = torch.tensor(sorted(eos), dtype=torch.long, device=device)  # (E,) may be empty
    stop = [s for s in (stop or []) if s]

    # Left padding puts every prompt's last token in the last column, so one step feeds one column for all rows.
    # (built as lists, one tensor each: a copy per row costs more than a small model's forward)
    B, T = len(prompt_ids), max(len(p) for p in prompt_ids)
    input_ids = torch.tensor([[pad] * (T - len(ids)) + list(ids) for ids in prompt_ids], dtype=torch.long,
                             device=device).view(B, T)  # (B, T)
    attention_mask = torch.tensor([[0] * (T - len(ids)) + [1] * len(ids) for ids in prompt_ids], dtype=torch.long,
                                  device=device).view(B, T)  # (B, T) 1 = real token
    # Positions count real tokens only, so a padded row sees the same positions as it would alone.
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)

    # One cache per model, filled in place by the model: nothing is read back from its output.
    caches: dict[str, Any] = {role: new_cache(model) for role, model in models.items()}
    cache_names = {role: cache_argument(model) for role, model in models.items()}
    # Only the last position's logits are read: the prefill need not project every prompt token onto the vocabulary
    keep_last = {role: {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}
                 for role, model in models.items()}
    shared_rows, row_of = share_rows(prompt_ids) if share_prompts and use_cache else (list(range(B)), None)
    if row_of is not None and len(shared_rows) == B:
        row_of = None  # every prompt distinct: nothing to share
    sequence, full_mask = input_ids, attention_mask  # (B, T + t) everything so far, for use_cache=False
    step_ids, step_positions = input_ids, position_ids  # what the models see this step
    generated = torch.zeros((B, 0), dtype=torch.long, device=device)  # (B, t)
    logprob = torch.zeros(B, dtype=torch.float64, device=device)  # (B,) running sum of sampled tokens' log-probs
    done = torch.zeros(B, dtype=torch.bool, device=device)  # (B,)
    reasons = ["length"] * B
    texts: list[str | None] = [None] * B
    lengths = [max_new_tokens] * B

    steps: dict[str, DecodeStep | None] = {}  # role -> its decode step after the prefill (None: its forward)
    for t in range(max_new_tokens):
        # 1. every model scores the next token from the same prefix: role -> (B, V)
        logits = {}
        for role, model in models.items():
            if steps.get(role) is not None:  # the fast decode step: the forward's logits without its glue
                logits[role] = steps[role](step_ids, full_mask, step_positions).float()
                continue
            if use_cache and t == 0 and row_of is not None:
                # prefill each distinct prompt once (U rows), then copy its cache and logits to its B rows
                pick = torch.tensor(shared_rows, device=device)  # (U,)
                out = model(input_ids=step_ids[pick], attention_mask=full_mask[pick],
                            position_ids=step_positions[pick], use_cache=True,
                            **{cache_names[role]: caches[role]}, **keep_last[role])
                expand = torch.tensor(row_of, device=device)  # (B,) row -> its prompt's index in pick
                if caches[role] is not None:
                    caches[role].reorder_cache(expand)  # every layer's keys/values: (U, H, T, D) -> (B, H, T, D)
                logits[role] = out.logits[:, -1, :].float()[expand]  # (B, V)
            else:
                if use_cache:
                    out = model(input_ids=step_ids, attention_mask=full_mask, position_ids=step_positions,
                                use_cache=True, **{cache_names[role]: caches[role]},
                                **(keep_last[role] if t == 0 else {}))
                else:
                    out = model(input_ids=sequence, attention_mask=full_mask,
                                position_ids=(full_mask.cumsum(-1) - 1).clamp(min=0), use_cache=False)
                logits[role] = out.logits[:, -1, :].float()  # (B, V)
            if use_cache and t == 0 and fast_step:  # after the prefill: its keys and values move into the step's
                steps[role] = DecodeStep.after_prefill(model, caches[role], T + max_new_tokens, full_mask)
                if steps[role] is not None:
                    caches[role] = None  # the step holds them now

        # 2. the decoder turns them into the distribution to sample from; draw one token per row
        logprobs = decoder.step(logits, settings)  # (B, V), -inf outside the support
        token = draw_tokens(logprobs, generators, draw)  # (B, 1)
        # the sampled tokens' log-probs, 0 for finished rows, which idle on pad
        logprob += logprobs.gather(-1, token).squeeze(-1).double().masked_fill_(done, 0.0)
        token.masked_fill_(done[:, None], pad)
        generated = torch.cat([generated, token], dim=-1)  # (B, t + 1)

        # 3. per-row stopping: EOS (one vectorised check), then stop strings (on the decoded text so far)
        hit_eos = torch.isin(token.squeeze(-1), eos_tensor).logical_and_(~done)  # (B,)
        for row, hit in enumerate(hit_eos.tolist()):
            if hit:
                reasons[row], lengths[row] = "eos", t + 1
        done |= hit_eos
        for row in (torch.nonzero(~done).flatten().tolist() if stop else []):
            text = tokenizer.decode(generated[row].tolist(), skip_special_tokens=True)
            hits = [text.find(s) for s in stop if s in text]
            if hits:
                done[row], reasons[row], lengths[row] = True, "stop", t + 1
                texts[row] = text[:min(hits)]
        if all_done(bool(done.all())) if all_done is not None else bool(done.all()):
            break

        # 4. the next step feeds only the new column; masks and positions grow by one
        full_mask = torch.cat([full_mask, torch.ones_like(token)], dim=-1)  # (B, T + t + 1)
        if not use_cache:
            sequence = torch.cat([sequence, token], dim=-1)  # (B, T + t + 1)
        step_ids, step_positions = token, step_positions[:, -1:] + 1  # (B, 1), (B, 1)

    result = Samples()
    rows, sums = generated.tolist(), logprob.tolist()  # one transfer each, not one a row
    for row in range(B):
        ids = rows[row][:lengths[row]]
        result.token_ids.append(ids)
        text = texts[row]
        if text is None:
            text = tokenizer.decode([i for i in ids if i not in eos], skip_special_tokens=True)
        result.texts.append(text)
        result.finish_reasons.append(reasons[row])
        result.logprobs.append(sums[row])
    return result


def sample(models: dict[str, Any], tokenizer: Any, prompt_ids: Sequence[Sequence[int]], decoder: Any,
           settings: SamplingSettings, *, max_new_tokens: int, seed: int = 0, batch_size: int = 16,
           stop: Sequence[str] | None = None, use_cache: bool = True, share_prompts: bool = False,
           draw: str = "multinomial", per_row: bool = False, fast_step: bool = False) -> Samples:
    """Sample one continuation per entry of prompt_ids (repeat an entry for several samples), batch by batch.

    per_row=False: batch i draws from make_generator(seed, i), so samples depend on batch_size. per_row=True:
    row n draws from row_generator(seed, n, 0), the same samples whatever batch_size is."""
    device = next(models["policy"].parameters()).device
    result = Samples()
    for index, start in enumerate(range(0, len(prompt_ids), batch_size)):
        rows = range(start, min(start + batch_size, len(prompt_ids)))
        generator = ([row_generator(seed, n, 0, device) for n in rows] if per_row
                     else make_generator(seed, index, device))
        result.extend(sample_batch(models, tokenizer, prompt_ids[start:start + batch_size], decoder, settings,
                                   max_new_tokens=max_new_tokens, generator=generator, stop=stop,
                                   use_cache=use_cache, share_prompts=share_prompts, draw=draw,
                                   fast_step=fast_step))
    return result
