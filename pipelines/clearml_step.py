"""The function every ClearML pipeline step runs, and how step results travel between steps (JSON).

ClearML turns a function step into a standalone script and copies the defining module's top-level imports into it,
after its own header (clearml/backend_interface/task/populate.py, CreateFromFunction): so this module has no
top-level import at all, and each function imports what it needs inside its body.
"""


def run_step(node, **kwargs):
    """Run pipeline node `node` through the executor both runners share; return its results in declared order."""
    try:
        from pipelines.dag import declaration
        from pipelines.executor import execute
    except ImportError as error:
        raise SystemExit(
            f"This agent's Python cannot import the brain-tumor-clearml package ({error}). Pipeline steps run in the "
            f"project's image: start the agent in docker mode with it, e.g. `clearml-agent daemon --queue gpu "
            f"--docker brain-tumor-clearml:<version> --gpus 0` (docker/README.md), or install the package into the "
            f"agent's Python.") from None
    from pipelines.clearml_step import JsonResult
    from pipelines.dag import FILES

    result = execute(node, kwargs, share=True)
    values = tuple(JsonResult(result[key]) if isinstance(result[key], dict) else result[key]
                   for key in (*declaration(node)[0].returns, FILES))
    return values if len(values) > 1 else values[0]


class JsonResult:
    """A dict result, as ClearML's step script uploads it: JSON under the result's name (the script names a dict's
    artifact `<name>.pkl`, which it is not), with the JSON itself as the preview the web UI shows."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        import json

        return json.dumps(self.value, indent=1)


def to_json(value):
    import json

    return json.dumps(getattr(value, "value", value)).encode()


def from_json(data):
    import json

    return json.loads(data)
