"""Exact evaluation of a causal LM on the toy world, by teacher-forcing every enumerated response.

Convention (alignkit.data.tokenize, the one module prepare, decode and online training use): a plain-text
prompt keeps the tokenizer's own special tokens (the toy tokenizer adds none), the response is what follows it in
`prompt + " " + response + EOS`, and

    π(y | x) = Π_t p(y_t | x, y_<t)        over the response tokens, EOS included.

For each prompt the enumerated set Y(x) (880 responses, `alignkit.toy.world`) gets, exactly:

    expected_reward = Σ_{y∈Y} π(y|x) r(x, y)               (text outside Y has reward 0, so this is E_π[r])
    entropy         = −Σ_{y∈Y} π(y|x) log π(y|x)           (nats; the entropy of π restricted to Y, unnormalised)
    kl              = Σ_{y∈Y} π(y|x) (log π(y|x) − log π_ref(y|x))          (None without a reference model)
    expected_length = Σ_{y∈Y} π(y|x) |y|                   (response words = tokens without EOS; the length trap)
    outside_mass    = 1 − π(Y|x), computed on its own by walking the prefix tree of Y: the sum over every prefix
                      of π(prefix) · p(tokens that leave Y | prefix)

so that Σ_Y π + outside_mass = 1 is a check on the computation, not a definition. For a model that keeps its
mass on Y (outside_mass ≈ 0) these are the true expected reward, sequence entropy and KL.

A decoder (`sample` with truncation, `conformative`, ...) samples from its own distribution q, not from the
model's π: each step it maps the next-token logits of every model it needs to the log-probs it draws from.
`decoder_distribution` / `exact_evaluate_decoder` compute q exactly the same way, by teacher-forcing Y through
each model and applying `decoder.step` at every response position, so q(y|x) = Π_t q(y_t | x, y_<t) and the
figures above (with q for π) are those of the sampler `alignkit decode` runs. A truncating decoder gives some
responses q = 0; they count for nothing in the sums.
"""
from __future__ import annotations

from typing import Any

from alignkit.toy import reward, world


def _forward_logits(model: Any, prompt_ids: list[int], seqs: list[list[int]], pad_id: int,
                    batch_size: int) -> Any:
    """Next-token logits at each response position: (N, T, V) float32, T = the longest response."""
    import torch

    device = next(model.parameters()).device
    T = max(len(s) for s in seqs)
    P = len(prompt_ids)
    out = []
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start:start + batch_size]
        # right-padded prompt + response; position P-1+t predicts response token t
        ids = torch.full((len(chunk), P + T), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(chunk):
            ids[i, :P + len(s)] = torch.tensor(prompt_ids + s)
            mask[i, :P + len(s)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # (B, P+T, V)
        out.append(logits[:, P - 1:P - 1 + T].float().cpu())  # (B, T, V)
    return torch.cat(out)


def _forward_logprobs(model: Any, prompt_ids: list[int], seqs: list[list[int]], pad_id: int,
                      batch_size: int) -> Any:
    """Full next-token log-probs at each response position: (N, T, V) float32, T = the longest response."""
    import torch

    return torch.log_softmax(_forward_logits(model, prompt_ids, seqs, pad_id, batch_size), dim=-1)


def _enumerate(tokenizer: Any, prompt: str) -> tuple[list[str], list[list[int]], list[int]]:
    """The prompt's responses Y, their token ids (each ends with EOS) and the prompt's token ids."""
    texts = world.responses(prompt)
    prompt_ids, seqs = world.encode(tokenizer, prompt, texts)
    return texts, seqs, prompt_ids


def _distribution(logp: Any, seqs: list[list[int]]) -> tuple[Any, float]:
    """Per-position next-token log-probs (N, T, V) of a sampler -> its sequence log-probs (N,) and outside mass.

    logp may hold -inf (a decoder's truncated tokens): a response that needs one gets log-prob -inf, and a prefix
    that needs one sends nothing outside Y.
    """
    import torch

    N, T, V = logp.shape
    targets = torch.zeros(N, T, dtype=torch.long)
    valid = torch.zeros(N, T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        targets[i, :len(s)] = torch.tensor(s)
        valid[i, :len(s)] = True
    token_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).double()  # (N, T)
    token_logp = torch.where(valid, token_logp, 0.0)  # not `* valid`: a truncated pad position is -inf · 0 = NaN
    seq_logp = token_logp.sum(-1)  # (N,)
    cumulative = torch.cumsum(token_logp, -1)  # (N, T)
    # log π(y_<t). cumulative − token is the form the model figures have always used (kept bit for bit); where
    # the token itself is impossible it is −inf − (−inf) = NaN, so there take the sum before it directly.
    before = torch.cat([torch.zeros(N, 1, dtype=cumulative.dtype), cumulative[:, :-1]], -1)  # (N, T)
    prefix_logp = torch.where(token_logp.isfinite(), cumulative - token_logp, before)  # (N, T)

    # The prefix tree of Y: for each prefix, which next tokens stay inside Y.
    children: dict[tuple[int, ...], set[int]] = {}
    for s in seqs:
        for t in range(len(s)):
            children.setdefault(tuple(s[:t]), set()).add(s[t])
    # Each prefix once, at its first occurrence (i, t); the mass it sends outside Y is π(prefix) times the
    # probability of its next tokens that are not its children in the tree.
    first_i, first_t, child_k, child_v = [], [], [], []
    seen_nodes: set[tuple[int, ...]] = set()
    for i, s in enumerate(seqs):
        for t in range(len(s)):
            node = tuple(s[:t])
            if node not in seen_nodes:
                seen_nodes.add(node)
                for v in children[node]:
                    child_k.append(len(first_i))
                    child_v.append(v)
                first_i.append(i)
                first_t.append(t)
    fi, ft = torch.tensor(first_i), torch.tensor(first_t)
    node_probs = logp[fi, ft].exp().double()  # (M, V) next-token distribution at each prefix
    leave = torch.ones_like(node_probs, dtype=torch.bool)
    leave[torch.tensor(child_k), torch.tensor(child_v)] = False
    outside = float((prefix_logp[fi, ft].exp() * (node_probs * leave).sum(-1)).sum())
    return seq_logp, outside


def sequence_distribution(model: Any, tokenizer: Any, prompt: str, batch_size: int = 400) -> dict[str, Any]:
    """π over the prompt's enumerated responses: {"responses", "logprobs" (N,) float64 tensor, "outside_mass"}."""
    texts, seqs, prompt_ids = _enumerate(tokenizer, prompt)
    logp = _forward_logprobs(model, prompt_ids, seqs, tokenizer.pad_token_id, batch_size)  # (N, T, V)
    seq_logp, outside = _distribution(logp, seqs)
    return {"responses": texts, "logprobs": seq_logp, "outside_mass": outside}


def decoder_distribution(decoder: Any, models: dict[str, Any], tokenizer: Any, prompt: str, settings: Any = None,
                         batch_size: int = 400) -> dict[str, Any]:
    """q, the distribution `decoder` samples from, over the prompt's responses: the keys of sequence_distribution.

    models: role -> model, as `alignkit.engine.sample.sample_batch` takes them ("policy" and every role in
    decoder.extra_models, e.g. {"policy": instruct, "base": base}). settings: a SamplingSettings (default: its
    defaults, temperature 1 and no truncation). logprobs is -inf for a response the decoder can never produce.
    """

    from alignkit.engine.sample import SamplingSettings
    from alignkit.errors import UserError

    roles = ["policy", *getattr(decoder, "extra_models", {})]
    missing = [role for role in roles if role not in models]
    if missing:
        raise UserError(f"the decoder needs a model for role(s) {', '.join(missing)}; pass them in models")
    texts, seqs, prompt_ids = _enumerate(tokenizer, prompt)
    logits = {role: _forward_logits(models[role], prompt_ids, seqs, tokenizer.pad_token_id, batch_size)
              for role in roles}  # role -> (N, T, V)
    N, T, _ = logits["policy"].shape
    # Every (response, position) row is one step the sampler could take from that prefix, and a decoder's step
    # treats rows independently, so all N·T steps go through it at once.
    step = decoder.step({role: z.reshape(N * T, -1) for role, z in logits.items()},
                        settings or SamplingSettings())  # (N·T, V)
    seq_logp, outside = _distribution(step.reshape(N, T, -1).float(), seqs)
    return {"responses": texts, "logprobs": seq_logp, "outside_mass": outside}


def _figures(prompt: str, dist: dict[str, Any], ref_logp: Any = None) -> dict[str, Any]:
    """One prompt's row of exact figures from its distribution over Y (and a reference's log-probs, for KL)."""
    import torch

    logp = dist["logprobs"]  # (N,) float64, -inf where the sampler cannot go
    p = logp.exp()
    # p · log p (and p · log(p / p_ref)) is 0 where p = 0; written out it would be 0 · −inf = NaN
    plogp = torch.where(p > 0, p * logp, 0.0)
    r = torch.tensor(reward.reward_fn([prompt] * len(dist["responses"]), list(dist["responses"])),
                     dtype=torch.float64)
    kl = None
    if ref_logp is not None:
        kl = float(torch.where(p > 0, p * (logp - ref_logp), 0.0).sum())
    words = torch.tensor([len(text.split()) for text in dist["responses"]], dtype=torch.float64)  # (N,)
    return {
        "prompt": prompt,
        "expected_reward": float((p * r).sum()),
        "entropy": float(-plogp.sum()),
        "kl": kl,
        "expected_length": float((p * words).sum()),
        "outside_mass": dist["outside_mass"],
    }


def _with_mean(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("expected_reward", "entropy", "kl", "expected_length", "outside_mass")
    mean = {k: (None if rows[0][k] is None else sum(row[k] for row in rows) / len(rows)) for k in keys}
    return {"per_prompt": rows, "mean": mean}


def exact_evaluate(model: Any, tokenizer: Any, ref_model: Any = None, batch_size: int = 400,
                   prompts: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Expected reward, entropy, KL to `ref_model` and outside mass, per toy prompt and averaged over prompts.

    Returns {"per_prompt": [{"prompt", "expected_reward", "entropy", "kl", "expected_length", "outside_mass"},
    ...], "mean": {the same keys but prompt}}; kl is None when ref_model is None.
    The reference must share the tokenizer. See the module docstring for the definitions.
    """
    rows = []
    for prompt in prompts or world.PROMPTS:
        dist = sequence_distribution(model, tokenizer, prompt, batch_size)
        ref_logp = None
        if ref_model is not None:
            ref_logp = sequence_distribution(ref_model, tokenizer, prompt, batch_size)["logprobs"]
        rows.append(_figures(prompt, dist, ref_logp))
    return _with_mean(rows)


def exact_evaluate_decoder(decoder: Any, models: dict[str, Any], tokenizer: Any, settings: Any = None,
                           ref_model: Any = None, batch_size: int = 400,
                           prompts: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """exact_evaluate's figures for what `decoder` samples (with `settings`) rather than for a model's π.

        from alignkit_conformative import ConformativeOptions
        from alignkit_conformative.decoder import ConformativeDecoder
        decoder = ConformativeDecoder(ConformativeOptions(weight=0.5))
        exact_evaluate_decoder(decoder, {"policy": instruct, "base": base}, tok, SamplingSettings(top_p=0.9))

    models as in decoder_distribution; kl is KL(q ‖ ref_model), None without one.
    """
    rows = []
    for prompt in prompts or world.PROMPTS:
        dist = decoder_distribution(decoder, models, tokenizer, prompt, settings, batch_size)
        ref_logp = None
        if ref_model is not None:
            ref_logp = sequence_distribution(ref_model, tokenizer, prompt, batch_size)["logprobs"]
        rows.append(_figures(prompt, dist, ref_logp))
    return _with_mean(rows)
