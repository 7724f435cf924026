"""Command-line options generated from the pipeline's typed configuration (`pipelines/config.py`): one option per
parameter, with its default and description; values are parsed and checked by the configuration itself."""

from __future__ import annotations

import argparse

from brain_tumor.errors import UserError
from pipelines.config import PipelineConfig, parameters, type_name
from pipelines.search_space import declared


def flag(field) -> str:
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def add_config_options(parser: argparse.ArgumentParser, scope: str | None = None, only: tuple[str, ...] = (),
                       defaults: dict | None = None) -> None:
    """One option per parameter used in `scope` ("local" or "server"), or only those named in `only`."""
    for f in parameters(scope):
        if only and f.name not in only:
            continue
        default = (defaults or {}).get(f.name, f.default)
        text = f.metadata["help"] + (f" ({', '.join(f.metadata['choices'])})" if f.metadata["choices"] else "")
        text += search_note(f.name)
        text = text.replace("%", "%%")  # argparse formats help strings
        if type_name(f) == "bool":
            parser.add_argument(flag(f), dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=text)
        else:
            parser.add_argument(flag(f), dest=f.name, default=default, metavar=f.name.upper(),
                                help=f"{text} (default: {default!r})")


def search_note(name: str) -> str:
    """A tunable parameter's declared search range, as its help and the README show it."""
    found = declared().get(name)
    return f" [tune: {found.describe()}]" if found else ""


def file_values(args: argparse.Namespace) -> dict:
    """The values in effect before checking: the options' defaults, then the configuration file's values (if
    `--config`), then the options the user typed (`args.typed`, see cli/main.py)."""
    values = {f.name: getattr(args, f.name) for f in parameters() if hasattr(args, f.name)}
    file = getattr(args, "config_file", None)
    if file is None:
        return values
    typed = getattr(args, "typed", set())
    return {**values, **file.values, **{k: v for k, v in values.items() if k in typed}}


def config_from_args(args: argparse.Namespace, **overrides) -> PipelineConfig:
    """The configuration from the parsed options and the configuration file (unparsed strings are coerced and
    everything is checked here, in one message)."""
    file = getattr(args, "config_file", None)
    try:
        return PipelineConfig.from_values(file_values(args), **overrides)
    except UserError as error:
        if file is None:
            raise
        raise UserError(str(error).replace("Invalid pipeline parameters:", f"Invalid pipeline parameters (from "
                                           f"{file.path} and the command line):", 1)) from None


def markdown_table() -> str:
    """The parameters as README.md lists them (a test keeps the two equal: regenerate with
    `python -c "from cli.options import markdown_table; print(markdown_table())"`)."""
    where = {"both": "both", "local": "`run`", "server": "`launch`, `doctor`"}
    rows = ["| option | type | default | used by | what |", "|---|---|---|---|---|"]
    for f in parameters():
        choices = f" ({', '.join(f.metadata['choices'])})" if f.metadata["choices"] else ""
        rows.append(f"| `{flag(f)}` | {type_name(f)} | `{f.default!r}` | {where[f.metadata['scope']]} | "
                    f"{f.metadata['help']}{choices}{search_note(f.name)} |")
    return "\n".join(rows)
