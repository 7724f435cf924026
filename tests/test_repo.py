"""The repository's promises: CI runs the README's test command; no credentials are committed."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    return re.findall(r"```bash\n\s*(python3 -m venv[^\n]+)\n\s*```", (ROOT / "README.md").read_text())


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_second():
    commands = readme_commands()
    assert len(commands) == 2
    assert "brain-tumor demo" in commands[0] and "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_core_never_imports_clearml_or_anything_above_it():
    for path in (ROOT / "brain_tumor").rglob("*.py"):
        for layer in ("clearml", "steps", "pipelines", "cli"):
            assert not re.search(rf"^\s*(import|from)\s+{layer}\b", path.read_text(), re.M), (path, layer)


def test_steps_never_import_the_runners_or_the_command_line():
    for path in (ROOT / "steps").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+(pipelines|cli)\b", path.read_text(), re.M), path


def test_the_readme_lists_every_parameter_as_the_config_declares_it():
    from cli.options import markdown_table

    assert markdown_table() in (ROOT / "README.md").read_text(), \
        "README's parameter table differs from pipelines/config.py: paste cli.options.markdown_table() into it"
