"""Exact evaluation of a causal LM on the toy world, by teacher-forcing every enumerated response.

Convention (the same one alignkit's training and sampling engines use): a plain-text prompt is tokenized alone
with `add_special_tokens=False` (no chat template, no BOS), the response tokens follow immediately and end with
EOS, and

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
"""
from __future__ import annotations

from typing import Any

from alignkit.toy import reward, world


def _forward_logprobs(model: Any, prompt_ids: list[int], seqs: list[list[int]], pad_id: int,
                      batch_size: int) -> Any:
    """Full next-token log-probs at each response position: (N, T, V) float32, T = the longest response."""
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
        out.append(torch.log_softmax(logits[:, P - 1:P - 1 + T].float(), dim=-1).cpu())  # (B, T, V)
    return torch.cat(out)


def sequence_distribution(model: Any, tokenizer: Any, prompt: str, batch_size: int = 400) -> dict[str, Any]:
    """π over the prompt's enumerated responses: {"responses", "logprobs" (N,) float64 tensor, "outside_mass"}."""
    import torch

    texts = world.responses(prompt)
    seqs = world.token_ids(tokenizer, texts)  # each ends with EOS
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    logp = _forward_logprobs(model, prompt_ids, seqs, tokenizer.pad_token_id, batch_size)  # (N, T, V)
    N, T, V = logp.shape

    targets = torch.zeros(N, T, dtype=torch.long)
    valid = torch.zeros(N, T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        targets[i, :len(s)] = torch.tensor(s)
        valid[i, :len(s)] = True
    token_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).double() * valid  # (N, T)
    seq_logp = token_logp.sum(-1)  # (N,)
    prefix_logp = torch.cumsum(token_logp, -1) - token_logp  # (N, T): log π(y_<t)

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
    return {"responses": texts, "logprobs": seq_logp, "outside_mass": outside}


def exact_evaluate(model: Any, tokenizer: Any, ref_model: Any = None, batch_size: int = 400,
                   prompts: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Expected reward, entropy, KL to `ref_model` and outside mass, per toy prompt and averaged over prompts.

    Returns {"per_prompt": [{"prompt", "expected_reward", "entropy", "kl", "expected_length", "outside_mass"},
    ...], "mean": {the same keys but prompt}}; kl is None when ref_model is None.
    The reference must share the tokenizer. See the module docstring for the definitions.
    """
    import torch

    rows = []
    for prompt in prompts or world.PROMPTS:
        dist = sequence_distribution(model, tokenizer, prompt, batch_size)
        logp = dist["logprobs"]
        p = logp.exp()
        r = torch.tensor(reward.reward_fn([prompt] * len(dist["responses"]), list(dist["responses"])),
                         dtype=torch.float64)
        kl = None
        if ref_model is not None:
            ref_logp = sequence_distribution(ref_model, tokenizer, prompt, batch_size)["logprobs"]
            kl = float((p * (logp - ref_logp)).sum())
        words = torch.tensor([len(text.split()) for text in dist["responses"]], dtype=torch.float64)  # (N,)
        rows.append({
            "prompt": prompt,
            "expected_reward": float((p * r).sum()),
            "entropy": float(-(p * logp).sum()),
            "kl": kl,
            "expected_length": float((p * words).sum()),
            "outside_mass": dist["outside_mass"],
        })
    keys = ("expected_reward", "entropy", "kl", "expected_length", "outside_mass")
    mean = {k: (None if rows[0][k] is None else sum(row[k] for row in rows) / len(rows)) for k in keys}
    return {"per_prompt": rows, "mean": mean}
