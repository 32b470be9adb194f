"""Loading policy / reference / base models and tokenizers from a folder, a Hub id or a `toy:*` name."""
from __future__ import annotations

from typing import Any

from alignkit.errors import UserError


def resolve_path(spec: str) -> str:
    """The folder behind a model spec: a registered resource (toy:instruct, a .gguf file) or the spec as is."""
    from alignkit.plugins import resolve_resource

    return resolve_resource(spec, "model")


def pick_device(device: str = "auto") -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: Any) -> Any:
    """auto: bf16 on a GPU that supports it, fp32 otherwise."""
    import torch

    if dtype == "fp32":
        return torch.float32
    if dtype == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(spec: str) -> Any:
    """The model's tokenizer (alignkit.data.tokenize.load_tokenizer: pad = EOS when it has none)."""
    from alignkit.data.tokenize import load_tokenizer as load

    return load(spec)


def load_model(spec: str, dtype: str = "auto", device: str = "auto") -> Any:
    """A causal LM in eval mode on the chosen device and dtype."""
    from transformers import AutoModelForCausalLM

    dev = pick_device(device)
    path = resolve_path(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(dtype, dev))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a causal LM from '{spec}': {str(exc).splitlines()[0]}") from exc
    return model.to(dev).eval()


def add_lora(model: Any, rank: int, alpha: float, dropout: float, target_modules: str) -> Any:
    """Wrap a causal LM with a fresh LoRA adapter; with the adapter disabled it is exactly the starting model."""
    from peft import LoraConfig, get_peft_model

    targets: Any = "all-linear" if target_modules == "all-linear" else \
        [m.strip() for m in target_modules.split(",") if m.strip()]
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise UserError(f"cannot add LoRA to this model: {str(exc).splitlines()[0]} "
                        "(set --lora-target-modules to names of its linear layers)") from exc


def freeze(model: Any) -> Any:
    """A reference model: eval mode, no gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
