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
    from pipelines.dag import FILES

    result = execute(node, kwargs, share=True)
    values = tuple(result[key] for key in (*declaration(node)[0].returns, FILES))
    return values if len(values) > 1 else values[0]


def to_json(value):
    import json

    return json.dumps(value).encode()


def from_json(data):
    import json

    return json.loads(data)
