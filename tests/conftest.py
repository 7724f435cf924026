"""Shared fixtures: small synthetic datasets written to tmp folders (tests never read the real MRI data)."""

import hashlib
import json
import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A ClearML server named in the environment is for the server tests (tests/server) alone: every other test runs as on
# a machine with no server. Its variables move into one that only tests/server/conftest.py reads (before anything here
# imports clearml; pytest-xdist's workers inherit the moved variables).
SERVER_VARIABLES = ("CLEARML_API_HOST", "CLEARML_WEB_HOST", "CLEARML_FILES_HOST", "CLEARML_API_ACCESS_KEY",
                    "CLEARML_API_SECRET_KEY", "CLEARML_CONFIG_FILE", "CLEARML_CACHE_DIR")
if any(name in os.environ for name in SERVER_VARIABLES):
    os.environ["BRAIN_TUMOR_TEST_SERVER"] = json.dumps({n: os.environ.pop(n) for n in SERVER_VARIABLES
                                                        if n in os.environ})

from brain_tumor.synthetic import CLASS_NAMES, write_dataset  # noqa: E402 (after the variables move)


@pytest.fixture
def make_data(tmp_path):
    """Write a synthetic ROOT/Training (+ Testing) dataset and return ROOT."""

    def make(train_per_class=12, test_per_class=0, size=32, seed=0, name="data"):
        return write_dataset(tmp_path / name, train_per_class, test_per_class, size=size, seed=seed)

    return make


@pytest.fixture(scope="session")
def learnable_data(tmp_path_factory):
    """A synthetic set big enough to learn in a few CPU epochs (shared by the slower tests)."""
    return write_dataset(tmp_path_factory.mktemp("learnable"), 100, 20, size=32, seed=1)


FAST = {"epochs": 2, "image_size": 32, "weights": "none", "warmup_epochs": 0}
# Stand for ClearML credentials in the environment: the pipeline run must not write them anywhere. Made at run time
# so that they are not in any source file (ClearML records a run's uncommitted git diff).
SECRET_MARKER = f"secret-{uuid.uuid4().hex}"
ACCESS_MARKER = f"access-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def pipeline_data(tmp_path_factory):
    """Training + Testing, with a few test images that are resized, re-encoded copies of training images."""
    from brain_tumor.synthetic import plant_twins

    root = write_dataset(tmp_path_factory.mktemp("pipeline") / "data", 40, 10, size=32, seed=3)
    plant_twins(root, 4, seed=3)
    return root


@pytest.fixture(scope="session")
def first_run(pipeline_data, tmp_path_factory):
    """One pipeline run (three models), shared by the pipeline and report tests; credentials in its environment."""
    from pipelines.config import PipelineConfig
    from pipelines.local_runner import run_pipeline

    run_dir = tmp_path_factory.mktemp("run") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLEARML_API_ACCESS_KEY", ACCESS_MARKER)
        patch.setenv("CLEARML_API_SECRET_KEY", SECRET_MARKER)
        runs = run_pipeline(PipelineConfig.from_values(data=str(pipeline_data), models="cnn_a,cnn_b,resnet50",
                                                       run_dir=str(run_dir), **FAST), quiet=True)
    return run_dir, runs


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    """The tests that read `first_run` go to one test worker (`--dist loadgroup`), so the pipeline runs once."""
    for item in items:
        if "first_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("first_run"))


def tree_digest(folder: Path) -> str:
    """A digest of every path, size and byte under a folder: equal before and after means nothing was modified."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


__all__ = ["ACCESS_MARKER", "CLASS_NAMES", "FAST", "SECRET_MARKER", "tree_digest"]
