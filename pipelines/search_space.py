"""The search space `brain-tumor tune` explores: each tunable parameter's range, declared with the parameter itself
(`param(..., search=...)` in `pipelines/config.py`), narrowed or widened by the user without editing code:

    --search lr=log:1e-4:3e-3          log-uniform between two positive numbers
    --search label_smoothing=uniform:0:0.2
    --search patience=int:2:8          an integer, both ends included
    --search augment=choice:none,light one of the listed values

or the same strings under `search:` in a configuration file (a list such as `[log, 1e-4, 3e-3]` works there too).
Every range is checked against what its parameter accepts (the configuration's own checks), and all problems are
listed in one message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from brain_tumor.errors import UserError

from .config import PipelineConfig, coerce, parameters, type_name

KINDS = ("log", "uniform", "int", "choice")


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Range:
    """One parameter's range: kind "log" / "uniform" / "int" with low and high (both included), or "choice"."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple = ()

    def text(self) -> str:
        """As `--search` takes it (and `trials.csv` / the report show it)."""
        if self.kind == "choice":
            return "choice:" + ",".join(_number(c) for c in self.choices)
        return f"{self.kind}:{_number(self.low)}:{_number(self.high)}"

    def describe(self) -> str:
        """In words, for the CLI help and the README."""
        if self.kind == "choice":
            return "one of " + ", ".join(_number(c) for c in self.choices)
        kind = {"log": "log-uniform", "uniform": "uniform", "int": "integer"}[self.kind]
        return f"{kind} {_number(self.low)} to {_number(self.high)}"

    def contains(self, value) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return self.low <= value <= self.high

    def suggest(self, trial):
        """This range's value for an Optuna trial."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.kind == "log")

    def as_dict(self) -> dict:
        return {"kind": self.kind, "low": self.low, "high": self.high, "choices": list(self.choices)}


def tunable() -> dict:
    """The parameters with a declared range: name → field."""
    return {f.name: f for f in parameters() if f.metadata.get("search")}


def declared() -> dict[str, Range]:
    """Every tunable parameter's declared range, in declaration order."""
    space = {}
    for name, f in tunable().items():
        kind, *rest = f.metadata["search"]
        space[name] = Range(name, kind, choices=tuple(rest[0])) if kind == "choice" else Range(name, kind, *rest)
    return space


def parse_option(text: str) -> tuple[str, str]:
    """`NAME=KIND:...` (a --search option) → (name, spec); names may be dashed."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise UserError(f"--search {text!r}: write NAME=KIND:..., e.g. lr=log:1e-4:3e-3 or augment=choice:none,light")
    return name.strip().replace("-", "_"), spec.strip()


def build(name: str, spec) -> tuple[Range | None, list[str]]:
    """A range from its spec (a string `KIND:...` or a list [KIND, ...]), and what is wrong with it."""
    fields = tunable()
    if name not in fields:
        known = {f.name for f in parameters()}
        why = ("is not a tunable parameter" if name in known else "is not a parameter")
        return None, [f"search {name}: {why}; tunable: {', '.join(fields)}"]
    f = fields[name]
    if isinstance(spec, str):
        kind, _, rest = spec.partition(":")
        parts = rest.split(",") if kind.strip() == "choice" else rest.split(":")
        parts = [p.strip() for p in parts if p.strip()]
    elif isinstance(spec, (list, tuple)) and spec:
        kind, *parts = spec
        if str(kind).strip() == "choice" and len(parts) == 1 and isinstance(parts[0], (list, tuple)):
            parts = list(parts[0])
    else:
        return None, [f"search {name}: {spec!r} is not a range (write KIND:..., e.g. log:1e-4:3e-3)"]
    kind = str(kind).strip()
    if kind not in KINDS:
        return None, [f"search {name}: unknown kind {kind!r}; use one of {', '.join(KINDS)}"]
    problems = []
    values = []
    for part in parts:  # each value as the parameter's type, checked by the configuration's own rules
        try:
            value = coerce(f, part)
        except ValueError as error:
            problems.append(f"search {name}: {error}")
            continue
        refused = _refused(name, value)
        if refused:
            problems.append(f"search {name}: {_number(value)} is outside what {name} accepts ({refused})")
        values.append(value)
    if problems:
        return None, problems
    if kind == "choice":
        if not values:
            return None, [f"search {name}: choice needs at least one value, e.g. choice:a,b"]
        return Range(name, kind, choices=tuple(dict.fromkeys(values))), []
    if len(values) != 2:
        return None, [f"search {name}: {kind} needs two ends, {kind}:LOW:HIGH"]
    low, high = values
    if isinstance(low, bool) or not isinstance(low, (int, float)):
        return None, [f"search {name}: a {kind} range needs numbers; {name} takes choice:..."]
    if kind == "int" and not all(isinstance(v, int) for v in values):
        return None, [f"search {name}: int needs whole numbers"]
    if kind in ("log", "uniform") and type_name(f) == "int":
        return None, [f"search {name}: {name} is an integer: use int:{low}:{high}"]
    if not low < high:
        return None, [f"search {name}: the low end {_number(low)} is not below the high end {_number(high)}"]
    if kind == "log" and low <= 0:
        return None, [f"search {name}: a log range needs a positive low end, not {_number(low)}"]
    return Range(name, kind, low, high), []


def _refused(name: str, value) -> str:
    """Why the configuration refuses `name=value` (empty: it accepts it)."""
    try:
        PipelineConfig.from_values({name: value})
    except UserError as error:
        return "; ".join(line.strip(" -") for line in str(error).splitlines()[1:] if line.strip(" -").startswith(name))
    return ""


def search_space(overrides: dict | None = None, fixed: set | None = None) -> dict[str, Range]:
    """The declared ranges, minus the parameters `fixed` (given a value by the user: held at it), with `overrides`
    (name → spec, from --search or a file's `search:`) replacing or adding ranges. One UserError lists every
    problem."""
    overrides = {str(k).replace("-", "_"): v for k, v in (overrides or {}).items()}
    fixed = set(fixed or ())
    space = {name: r for name, r in declared().items() if name not in fixed}
    problems = []
    for name, spec in overrides.items():
        if name in fixed:
            problems.append(f"search {name}: also given a value ({name} is then fixed, not searched): drop one")
            continue
        built, found = build(name, spec)
        problems += found
        if built is not None:
            space[name] = built
    if problems:
        raise UserError("Invalid search space:\n  - " + "\n  - ".join(problems))
    return space


def clearml_ranges(space: dict[str, Range], section: str = "Args"):
    """The space as ClearML HyperParameterOptimizer ranges (for the server path of `tune`: a pipeline's parameters
    are `Args/<name>` on its controller). ClearML's log range takes exponents of 10."""
    from clearml.automation import (
        DiscreteParameterRange,
        LogUniformParameterRange,
        UniformIntegerParameterRange,
        UniformParameterRange,
    )

    ranges = []
    for name, r in space.items():
        key = f"{section}/{name}"
        if r.kind == "choice":
            ranges.append(DiscreteParameterRange(key, list(r.choices)))
        elif r.kind == "int":
            ranges.append(UniformIntegerParameterRange(key, int(r.low), int(r.high)))
        elif r.kind == "log":
            ranges.append(LogUniformParameterRange(key, math.log10(r.low), math.log10(r.high)))
        else:
            ranges.append(UniformParameterRange(key, float(r.low), float(r.high)))
    return ranges
