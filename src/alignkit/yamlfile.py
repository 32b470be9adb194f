"""Config files in YAML: reading a --config file (duplicate keys refused) and writing a resolved config.

`alignkit.config` re-exports both (`C.load_yaml`, `C.dump_yaml`); they live here to keep that module to its
dataclasses and their resolution.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from alignkit.errors import UserError


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The flat mapping of a --config file, keys with `-` as `_`; a key given twice (`max_steps` and `max-steps`
    are one key) is an error naming the key, the file and both lines, never a silent last-one-wins."""
    import yaml

    p = Path(path)
    if not str(path).strip():
        raise UserError("--config is empty; give a YAML file (--config run.yaml)")
    if p.is_dir():
        raise UserError(f"config file '{path}' is a folder; give a YAML file (--config run.yaml)")
    if not p.is_file():
        raise UserError(f"config file '{path}' does not exist")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_unique_key_loader()) or {}
    except _DuplicateKey as dup:
        same = "already" if dup.key == dup.first_key else f"the same option as '{dup.first_key}'"
        raise UserError(f"key '{dup.key}' appears twice in {path}: line {dup.line} ({same} on line "
                        f"{dup.first_line}); keep one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file '{path}': {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config file '{path}' is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise UserError(f"config file '{path}' must hold a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first_key: Any, first_line: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first_key, self.first_line = key, line, first_key, first_line


@functools.cache
def _unique_key_loader() -> type:
    """yaml.SafeLoader, refusing a mapping that names a key twice (YAML's own loader keeps the last silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[str, tuple[Any, int]] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` overrides on purpose
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                same = str(key).replace("-", "_")
                if same in seen:
                    raise _DuplicateKey(key, line, *seen[same])
                seen[same] = (key, line)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def dump_yaml(values: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
