"""Loading policy / reference / base models and tokenizers from a folder, a Hub id or a `toy:*` name."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alignkit.errors import UserError


def resolve_path(spec: str) -> str:
    """The folder behind a model spec: a registered resource (toy:instruct, a .gguf file) or the spec as is."""
    from alignkit.plugins import resolve_resource

    return resolve_resource(spec, "model")


DEVICE_FIX = "use --device cpu, or --device auto to take a GPU when there is one"


def pick_device(device: str = "auto") -> Any:
    """The torch device for --device: auto (CUDA if there is one, else the CPU), cpu, cuda, cuda:N or mps.
    A device this machine does not have, or a name that is none of these, is a one-line UserError; train and
    decode call this before they load anything."""
    import torch

    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind not in ("cuda", "mps") or (index and not index.isdigit()) or (kind == "mps" and index not in ("", "0")):
        raise UserError(f"unknown --device '{device}'; use auto, cpu, cuda, cuda:N or mps")
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"--device {device}: this machine has no Apple MPS GPU (or torch was built without it); "
                            f"{DEVICE_FIX}")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise UserError(f"--device {device}: this machine has no CUDA GPU that torch can use "
                        f"(torch.cuda.is_available() is False); {DEVICE_FIX}")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise UserError(f"--device {device}: this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
                        f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}); pick one of them, or --device cpu")
    return torch.device(name)


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


def check_model_spec(spec: str) -> None:
    """Refuse an empty model spec, or a local path that does not exist, in words (the Hub client would complain
    that './my-model' is not a valid repo id)."""
    if not spec.strip():
        raise UserError("a model name is empty; give a folder, a Hub id ('org/name') or a name such as toy:instruct")
    if ":" in spec or Path(spec).exists():  # named resources (toy:instruct) resolve elsewhere
        return
    if spec.startswith((".", "/", "~")) or spec.endswith("/") or spec.count("/") > 1 or "\\" in spec:
        raise UserError(f"model '{spec}' does not exist: there is no such folder or file (a Hub id is 'org/name')")


def load_tokenizer(spec: str) -> Any:
    """The model's tokenizer (alignkit.data.tokenize.load_tokenizer: pad = EOS when it has none)."""
    from alignkit.data.tokenize import load_tokenizer as load

    check_model_spec(spec)
    return load(spec)


def load_model(spec: str, dtype: str = "auto", device: str = "auto") -> Any:
    """A causal LM in eval mode on the chosen device and dtype."""
    from transformers import AutoModelForCausalLM

    dev = pick_device(device)
    check_model_spec(spec)
    path = resolve_path(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(dtype, dev))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a causal LM from '{spec}': {str(exc).splitlines()[0]}") from exc
    return model.to(dev).eval()


def unwrap_model(model: Any) -> Any:
    """The transformers model under accelerate's (DDP) and peft's wrappers."""
    import torch

    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def own_weights(model: Any) -> int:
    """Give every trainable CPU parameter its own memory; returns how many were copied.

    transformers maps a safetensors file into memory copy-on-write, so on the CPU a loaded model's weights are the
    file's pages. The first optimizer step then writes every page of them, and each first write is a page fault
    that copies 4 KiB: SmolLM2-135M's first fused AdamW step took 1.91 s against 0.31 s after a copy of the weights
    made up front, which took 0.11 s (machine F). Only trained weights are written, so frozen ones (a reference,
    LoRA's base) stay mapped. A tied weight is one parameter and stays one. The values are the same bit for bit."""
    copied = 0
    for p in model.parameters():
        if p.requires_grad and p.device.type == "cpu":
            p.data = p.data.clone()  # (the same Parameter object: optimizer, hooks and ties still see it)
            copied += 1
    return copied


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
