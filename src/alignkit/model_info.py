"""What a model folder says about itself: its `alignkit-model.json` (training defaults, the world it belongs to).

alignkit.config reads the training defaults from it; train copies the file into the run folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alignkit.errors import UserError

MODEL_INFO = "alignkit-model.json"


def model_info(spec: str) -> dict[str, Any]:
    """The `alignkit-model.json` of a model spec's folder, or {} (a Hub id, a .gguf file, a folder without one).

    It travels with the model: `train` copies it into the run folder, so a trained toy model passed by its path
    is still a toy model. Keys: "defaults" ({"train": {...}, "train --online": {...}}, TrainConfig fields) and
    "world" (the name of an enumerable world whose exact evaluation applies, e.g. "toy").
    """
    import json

    from alignkit.plugins import is_named_resource, resolve_resource

    if is_named_resource(spec):
        folder = Path(resolve_resource(spec, "model"))
    elif Path(spec).is_dir():
        folder = Path(spec)
    else:  # resolving other specs may convert or download: their defaults are the dataclass's
        return {}
    path = folder / MODEL_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
    return info if isinstance(info, dict) else {}
