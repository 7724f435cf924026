"""Configuration files: `brain-tumor run|launch|tune --config FILE` (YAML or JSON, by suffix).

The keys are the parameters' names (`pipelines/config.py`; underscored or dashed, or an option's own name such as
`out`), with the values an option takes:

    models: cnn_a,resnet50
    image_size: 128
    lr: 3.0e-4
    augment: light
    crop: true
    search:                      # tune only: the search space (pipelines/search_space.py)
      lr: log:1e-4:3e-3
      augment: choice:none,light

An option typed on the command line wins over the file, and the file over the defaults. The values are checked with
the command line's (`PipelineConfig.from_values`): every unknown key and bad value in one message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from brain_tumor.errors import UserError

from .config import parameters

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
SEARCH = "search"


@dataclass
class ConfigFile:
    path: Path
    text: str
    values: dict  # parameter name → value as written (checked with the command line's values)
    search: dict = field(default_factory=dict)  # tune: parameter → range spec
    extra: dict = field(default_factory=dict)  # the command's own keys (tune: trials, objective, ...)

    def record(self) -> dict:
        """What a run records of it: where it was and what it said."""
        return {"path": str(self.path.resolve()), "text": self.text}


def key_names() -> dict[str, str]:
    """Every spelling a key may take → the parameter's name: `image_size`, `image-size`, and an option's own name
    (`out` for run_dir)."""
    names = {}
    for f in parameters():
        names[f.name] = f.name
        if f.metadata["flag"]:
            names[f.metadata["flag"].lstrip("-").replace("-", "_")] = f.name
    return names


def parse_text(path: Path, text: str):
    """The file's data; a syntax error names the file, line and column."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: a configuration file ends in .yaml, .yml or .json (the suffix says how to read it)")
    if kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise UserError(f"{path}, line {error.lineno}, column {error.colno}: invalid JSON: {error.msg}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: invalid YAML: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: invalid YAML: {error}") from None


def read(path: str | Path, extra_keys: tuple[str, ...] = (), allow_search: bool = False) -> ConfigFile:
    """Read a configuration file. Unknown keys stay in `values`, for the configuration's check to list them with
    every other problem; what is wrong with the file's shape is raised here."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"Configuration file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"Cannot read the configuration file {path}: {error}") from None
    data = parse_text(path, text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a configuration file holds a mapping of parameter names to values (e.g. "
                        f"`epochs: 10`), not a {type(data).__name__}")
    names = key_names()
    extras = {k.replace("-", "_"): k.replace("-", "_") for k in extra_keys}
    config = ConfigFile(path, text, {})
    problems = []
    for key, value in data.items():
        name = str(key).strip().replace("-", "_")
        if name == SEARCH:
            if not allow_search:
                problems.append(f"search: only `brain-tumor tune` reads a search space; remove it from {path} "
                                f"for this command")
            elif not isinstance(value, dict):
                problems.append("search: a mapping of parameter names to ranges (e.g. `lr: log:1e-4:3e-3`)")
            else:
                config.search = {str(k).replace("-", "_"): v for k, v in value.items()}
        elif name in extras:
            config.extra[name] = value
        elif isinstance(value, (dict, list)):
            problems.append(f"{name}: {value!r} is not a single value")
        else:
            config.values[names.get(name, name)] = value
    if problems:
        raise UserError(f"Invalid configuration file {path}:\n  - " + "\n  - ".join(problems))
    return config
