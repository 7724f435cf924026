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


def test_core_never_imports_clearml():
    for path in (ROOT / "brain_tumor").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+clearml", path.read_text(), re.M), path
