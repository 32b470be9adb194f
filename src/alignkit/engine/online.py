"""Online work for the training loop: sample groups from the policy, score them, take a policy-gradient step.

    alignkit train qempo --online --reward toy --min-reward 0.85 --max-steps 200

Each micro-batch takes `batch_size` prompts and samples `group_size` completions of each from the current policy
with the shared sampler (alignkit.engine.sample, temperature `--temperature`: 1 keeps the samples on-policy).
Then, per sample:

    reward     r = reward_fn(prompt, completion)                          (--reward SPEC, alignkit.plugins.load_reward)
    log-probs  log π_θ(y|x) with gradient, log π_ref(y|x) without         (teacher-forced; EOS counted)
    return     G = objective.online.returns(r, log π_θ, log π_ref, multipliers)   (QEMPO: λ r − log π_θ − η KL̂)
    advantage  A = (G − mean of the prompt's group) / (std of the group + ε)      (GRPO-style)
    loss       −A · log π_θ(y|x)                                         (REINFORCE on the sequence log-prob)

Returns carry no gradient: E[−log π ∇log π] is the entropy's gradient, so a return of −log π_θ is the
sequence-level entropy bonus. After each optimizer step the objective's `update` moves its multipliers (dual
ascent); they are checkpointed, so a resumed run continues with the multipliers it had.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from alignkit import config as C
from alignkit.data.collate import collate_sequences
from alignkit.data.prompts import load_prompts
from alignkit.engine.batching import step_micro_batches, total_steps
from alignkit.engine.distributions import SampleDecoder
from alignkit.engine.logprobs import response_logprobs
from alignkit.engine.reference import frozen_pass, make_reference
from alignkit.engine.sample import SamplingSettings, encode_prompts, make_generator, sample_batch
from alignkit.engine.work import RunContext
from alignkit.errors import UserError
from alignkit.plugins import load_reward

EPS = 1e-6  # added to a group's standard deviation: a group of identical returns gets zero advantages
# One step whose rewards are all equal can be chance (prompts that every sample fails); this many steps in a row at
# one value is a reward that cannot tell this model's completions apart (the toy verifier scores any non-toy model
# 0 everywhere), and the run learns nothing from it. Five warns within a minute or so of a run, not on bad luck.
FLAT_REWARD_STEPS = 5


class OnlineWork:
    """Prompts for `objective.online`; one loss term per sampled completion."""

    def __init__(self, ctx: RunContext) -> None:
        cfg, tokenizer = ctx.cfg, ctx.tokenizer
        if cfg.group_size < 2:
            raise UserError("--group-size must be at least 2: advantages compare the samples of one prompt")
        self.cfg, self.policy, self.tokenizer, self.device = cfg, ctx.policy, tokenizer, ctx.device
        self.dist, self.sampler = ctx.dist, ctx.inference_model()  # sampling needs no gradient
        self.spec, self.options = ctx.objective.online, ctx.options
        # The same reader and checks as decode --prompts (a prepared prompt set must match the tokenizer).
        prompts = [p for _, p in load_prompts(cfg.prompts, tokenizer).prompts]
        if not prompts:
            raise UserError(f"no prompts in {cfg.prompts}: each row needs a 'prompt' (text or a list of messages)")
        self.prompt_ids = encode_prompts(tokenizer, prompts)
        # The reward sees the prompt as the user wrote it, or the chat-rendered text for a list of messages.
        self.prompt_texts = [p if isinstance(p, str) else tokenizer.decode(ids)
                             for p, ids in zip(prompts, self.prompt_ids)]
        self.reward_fn = load_reward(cfg.reward)
        self.flat_rewards = FlatRewardWatch(cfg.reward, ctx.dist.print)
        self.settings = SamplingSettings(temperature=cfg.temperature)
        self.global_batch = cfg.batch_size * ctx.dist.world  # --batch-size prompts per process
        ctx.dist.check_divides(len(prompts), cfg.batch_size, "prompts")
        self.micro_per_epoch = math.ceil(len(prompts) / self.global_batch)
        self.total_steps = total_steps(cfg.max_steps, cfg.epochs, len(prompts), self.global_batch, cfg.grad_accum)
        if cfg.max_steps is None and self.total_steps < 20:
            ctx.dist.print(f"note: {cfg.epochs:g} epochs over {len(prompts)} prompts is only {self.total_steps} "
                           "online steps; pass --max-steps for more")
        needed = ctx.objective.requires_reference(ctx.options)
        self.reference = make_reference(ctx, needed, "online")
        self.multipliers = dict(self.spec.init_state(ctx.options))
        self.started = time.perf_counter()

    # ---- the five calls the loop makes

    def micro_batches(self, step: int) -> list[list[int]]:
        """This process's prompt rows of each micro-batch: its slice of the global micro-batch."""
        rows = step_micro_batches(self.cfg.seed, len(self.prompt_ids), self.global_batch, self.cfg.grad_accum, step)
        return [self.dist.shard(r) for r in rows]

    def count(self, rows: list[int]) -> int:
        return len(rows) * self.cfg.group_size

    def losses(self, rows: list[int], step: int, micro: int) -> tuple[torch.Tensor, dict[str, float]]:
        """(N,) per-sample policy-gradient losses, N = len(rows) · group_size, and the metrics as sums."""
        G = self.cfg.group_size
        prompt_ids = [self.prompt_ids[i] for i in rows for _ in range(G)]  # N prompts, each group together
        # 1. sample: eval mode (no dropout), no gradient. Each prompt's group draws from its own generator, seeded by
        # (seed, micro-step, prompt row): the samples do not depend on which process holds the prompt.
        micro_step = step * self.cfg.grad_accum + micro
        generators = [make_generator(self.cfg.seed, micro_step * len(self.prompt_ids) + i, self.device) for i in rows]
        with frozen_pass(self.sampler):
            samples = sample_batch({"policy": self.sampler}, self.tokenizer, prompt_ids, SampleDecoder(),
                                   self.settings, max_new_tokens=self.cfg.max_new_tokens, generator=generators,
                                   all_done=self.dist.all_done if self.dist.sharded else None,
                                   share_prompts=self.cfg.shared_prompt,  # a prompt's G rows share one prefill
                                   fast_step=self.cfg.shared_prompt,  # decode steps without the forward's glue
                                   draw="inverse-cdf" if self.cfg.shared_prompt else "multinomial")
        # 2. score and teacher-force the completions
        rewards = torch.tensor(self.reward_fn([self.prompt_texts[i] for i in rows for _ in range(G)], samples.texts),
                               dtype=torch.float32, device=self.device)  # (N,)
        self.flat_rewards.see(rewards)
        # A completion cut at --max-new-tokens has no EOS: its log-prob sums the tokens that were sampled.
        batch = {k: v.to(self.device) for k, v in
                 collate_sequences(prompt_ids, samples.token_ids, self.tokenizer.pad_token_id).items()}
        logps, mask = response_logprobs(self.policy, batch, shared_prompt=self.cfg.shared_prompt,
                                        fused_head=self.cfg.fused_head)  # (N, T), grad
        policy_logps = (logps * mask).sum(-1)  # (N,)
        ref_logps = self.reference.sequences(batch)  # (N,) or None
        # 3. returns -> group-normalised advantages -> REINFORCE
        returns = self.spec.returns(rewards, policy_logps.detach(), ref_logps, self.multipliers,
                                    **C.mode_options(self.options, "online")).float()  # (N,)
        losses = -group_advantages(returns, G).detach() * policy_logps  # (N,)
        sums = {"reward": rewards.sum().item(), "reward_sq": rewards.pow(2).sum().item(),
                "entropy": -policy_logps.detach().sum().item(), "completion_length": float(mask.sum().item())}
        if ref_logps is not None:
            sums["kl"] = (policy_logps.detach() - ref_logps).sum().item()
        return losses, sums

    def finish(self, step: int, sums: dict[str, float], n: int) -> dict[str, float]:
        """Logged fields: reward mean/std, sequence entropy and KL estimates, the multipliers used, samples/s;
        then the objective's dual ascent moves the multipliers for the next step. The sums are the global step's
        (every process's added up), so every process moves its multipliers alike."""
        mean = sums["reward"] / n
        self.flat_rewards.step_done()
        now = time.perf_counter()
        record = {"epoch": round(step * self.cfg.grad_accum / self.micro_per_epoch, 4),
                  "reward": mean, "reward_std": math.sqrt(max(sums["reward_sq"] / n - mean * mean, 0.0)),
                  "entropy": sums["entropy"] / n, "completion_length": sums["completion_length"] / n,
                  **({"kl": sums["kl"] / n} if "kl" in sums else {}),
                  **self.multipliers, "samples_per_second": n / max(now - self.started, 1e-9)}
        self.started = now
        self.multipliers = dict(self.spec.update(self.multipliers, {"reward": mean, "kl": record.get("kl")},
                                                 **C.mode_options(self.options, "online")))
        return record

    def state(self) -> dict[str, Any]:
        return {"multipliers": dict(self.multipliers)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.multipliers = dict(state.get("multipliers", self.multipliers))


# ----------------------------------------------------------------------------------------------------------
# Helpers


class FlatRewardWatch:
    """Warns once when every sampled reward of FLAT_REWARD_STEPS consecutive steps is one and the same value.
    Under a launcher it watches this process's samples and `say` prints on the main process only."""

    def __init__(self, spec: str, say: Callable[..., None] = print) -> None:
        self.spec, self.steps, self.value, self.warned, self.say = spec, 0, None, False, say
        self.low, self.high = math.inf, -math.inf  # this step's smallest and largest reward so far

    def see(self, rewards: torch.Tensor) -> None:
        self.low, self.high = min(self.low, rewards.min().item()), max(self.high, rewards.max().item())

    def step_done(self) -> None:
        flat = self.low == self.high
        self.steps = self.steps + 1 if flat and self.low == self.value else int(flat)
        self.value = self.low if flat else None
        self.low, self.high = math.inf, -math.inf
        if self.steps >= FLAT_REWARD_STEPS and not self.warned:
            self.warned = True
            self.say(f"warning: reward '{self.spec}' returned {round(self.value, 6)} for every completion in the last "
                  f"{FLAT_REWARD_STEPS} steps: it gives the policy gradient no signal; is it the right reward for "
                  "this model?", file=sys.stderr)


def group_advantages(returns: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) returns, each prompt's group_size samples adjacent -> (N,) (G − group mean) / (group std + ε);
    std is the unbiased sample standard deviation, as in GRPO."""
    grouped = returns.view(-1, group_size)  # (P, G)
    centred = grouped - grouped.mean(-1, keepdim=True)
    return (centred / (grouped.std(-1, keepdim=True) + EPS)).view(-1)
