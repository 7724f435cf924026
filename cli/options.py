"""Command-line options generated from the pipeline's typed configuration (`pipelines/config.py`): one option per
parameter, with its default and description; values are parsed and checked by the configuration itself."""

from __future__ import annotations

import argparse

from pipelines.config import PipelineConfig, parameters, type_name


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
        text = text.replace("%", "%%")  # argparse formats help strings
        if type_name(f) == "bool":
            parser.add_argument(flag(f), dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=text)
        else:
            parser.add_argument(flag(f), dest=f.name, default=default, metavar=f.name.upper(),
                                help=f"{text} (default: {default!r})")


def config_from_args(args: argparse.Namespace, **overrides) -> PipelineConfig:
    """The configuration from the parsed options (unparsed strings are coerced and everything is checked here)."""
    values = {f.name: getattr(args, f.name) for f in parameters() if hasattr(args, f.name)}
    return PipelineConfig.from_values(values, **overrides)


def markdown_table() -> str:
    """The parameters as README.md lists them (a test keeps the two equal: regenerate with
    `python -c "from cli.options import markdown_table; print(markdown_table())"`)."""
    where = {"both": "both", "local": "`run`", "server": "`launch`, `doctor`"}
    rows = ["| option | type | default | used by | what |", "|---|---|---|---|---|"]
    for f in parameters():
        choices = f" ({', '.join(f.metadata['choices'])})" if f.metadata["choices"] else ""
        rows.append(f"| `{flag(f)}` | {type_name(f)} | `{f.default!r}` | {where[f.metadata['scope']]} | "
                    f"{f.metadata['help']}{choices} |")
    return "\n".join(rows)
