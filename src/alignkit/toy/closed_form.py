"""Closed-form optimal policies on the toy world, and the distance of a trained policy to them.

Every prompt's 880 responses are enumerated, so the optimum of each objective is a softmax over a (880,) vector
of logits, and its expected reward, entropy and the KL from a trained policy are exact sums:

    quality (QEMPO, max H s.t. E[r] ≥ R):        π* ∝ exp(λ r)
    kl      (QEMPO, also KL(π‖π_ref) ≤ K):       π* ∝ π_ref^γ exp(λ r)
    dpo     (DPO / KL-regularised RL):           π* ∝ π_ref exp(λ r)

with λ = 1/τ (quality), 1/β (kl, dpo) for a reward on r's own scale, as online training sees it. Offline
objectives learn from pairs labelled by Bradley–Terry at scale s (toy:prefs: s = 10, `alignkit.toy.build`), so
their implicit reward is s·r: offline QEMPO-quality at τ targets λ = s/τ, offline kl and DPO at β target λ = s/β.

    from alignkit.toy.closed_form import World
    world = World.of(reference_model, tokenizer)                  # π_ref and r, (P, 880) each
    target = world.optimum("kl", lam=10 / 0.5, gamma=0.5)         # (P, 880) log-probs
    world.kl(world.policy(trained_model), target)                 # KL(π_θ ‖ π*), mean over prompts
    lam = world.match_reward("quality", 0.85)                     # λ whose optimum has E[r] = 0.85
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit.toy import reward, world

FAMILIES = ("quality", "kl", "dpo")


@dataclass
class World:
    """The enumerated toy world around one reference policy: (P, N) tensors, P prompts × N = 880 responses."""

    ref_logps: Any  # (P, N) float64 log π_ref(y|x), renormalised over the enumerated responses
    rewards: Any  # (P, N) float64 r(x, y)
    words: Any  # (P, N) float64 response length in words
    tokenizer: Any

    @classmethod
    def of(cls, ref_model: Any, tokenizer: Any) -> World:
        import torch

        logps, rewards = [], []
        for prompt in world.PROMPTS:
            responses = world.responses(prompt)
            logps.append(cls._distribution(ref_model, tokenizer, prompt))
            rewards.append(torch.tensor(reward.reward_fn([prompt] * len(responses), list(responses)),
                                        dtype=torch.float64))
        words = torch.tensor([len(y.split()) for y in world.all_responses()], dtype=torch.float64)
        return cls(torch.stack(logps), torch.stack(rewards), words.expand(len(world.PROMPTS), -1), tokenizer)

    @staticmethod
    def _distribution(model: Any, tokenizer: Any, prompt: str) -> Any:
        """(N,) log π(y|x) over the enumerated responses, renormalised on them (the outside mass is < 0.05)."""
        from alignkit.toy.exact import sequence_distribution

        was_training = model.training
        model.eval()
        logps = sequence_distribution(model, tokenizer, prompt)["logprobs"]
        model.train(was_training)
        return logps - logps.logsumexp(-1)

    def policy(self, model: Any) -> Any:
        """(P, N) log-probs of a trained model over the enumerated responses (renormalised on them)."""
        import torch

        return torch.stack([self._distribution(model, self.tokenizer, p) for p in world.PROMPTS])

    def optimum(self, family: str, lam: float, gamma: float = 1.0) -> Any:
        """(P, N) log-probs of the closed-form optimum of `family` at reward multiplier λ (and γ for kl)."""
        if family == "quality":
            logits = lam * self.rewards
        elif family == "kl":
            logits = gamma * self.ref_logps + lam * self.rewards
        elif family == "dpo":
            logits = self.ref_logps + lam * self.rewards
        else:
            raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
        return logits - logits.logsumexp(-1, keepdim=True)

    def figures(self, logps: Any) -> dict[str, float]:
        """Exact expected reward, entropy (nats), expected length and KL to the reference, means over prompts."""
        p = logps.exp()
        return {"expected_reward": float((p * self.rewards).sum(-1).mean()),
                "entropy": float(-(p * logps).sum(-1).mean()),
                "expected_length": float((p * self.words).sum(-1).mean()),
                "kl": self.kl(logps, self.ref_logps)}

    @staticmethod
    def kl(logps: Any, target: Any) -> float:
        """KL(π ‖ target) from (P, N) log-probs, mean over prompts."""
        return float((logps.exp() * (logps - target)).sum(-1).mean())

    def match_reward(self, family: str, target: float, gamma: float = 1.0, low: float = -50.0,
                     high: float = 500.0) -> float:
        """λ at which the optimum of `family` has mean expected reward `target` (bisection: E[r] rises with λ)."""
        for _ in range(100):
            mid = (low + high) / 2
            if self.figures(self.optimum(family, mid, gamma))["expected_reward"] < target:
                low = mid
            else:
                high = mid
        return (low + high) / 2
