"""Commands that need a ClearML server, against none: one clear message, exit code 2, no traceback, no secret."""

import socket
import subprocess
import sys

import pytest

from cli.main import main

ACCESS = "AKFAKEACCESSKEY0123456789"
SECRET = "fakeSecretKeyThatMustNeverBePrinted0123456789"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is


@pytest.fixture
def run_with_session(tmp_path):
    offline = tmp_path / "run" / "clearml" / "offline"
    offline.mkdir(parents=True)
    (offline / "offline-0123.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    return tmp_path / "run"


def test_unreachable_server_from_a_shell(run_with_session, tmp_path):
    host = f"http://127.0.0.1:{closed_port()}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CLEARML_API_HOST": host,
           "CLEARML_API_ACCESS_KEY": ACCESS, "CLEARML_API_SECRET_KEY": SECRET}
    result = subprocess.run([sys.executable, "-m", "cli", "import-offline", str(run_with_session)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert f"error: The ClearML server {host} is unreachable" in result.stderr
    assert "CLEARML_API_HOST" in result.stderr and "docker compose" in result.stderr
    assert "Traceback" not in result.stderr
    for secret in (ACCESS, SECRET):
        assert secret not in result.stdout + result.stderr


def test_no_server_configured(run_with_session, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CLEARML_API_HOST", raising=False)
    monkeypatch.setenv("CLEARML_CONFIG_FILE", str(tmp_path / "absent.conf"))
    assert main(["import-offline", str(run_with_session)]) == 2
    err = capsys.readouterr().err
    assert "No ClearML server is configured" in err and "clearml-init" in err


def test_a_folder_without_sessions(tmp_path, capsys):
    assert main(["import-offline", str(tmp_path)]) == 2
    assert "No offline ClearML sessions in" in capsys.readouterr().err


def test_run_with_an_unreachable_server_stops_before_any_step(tmp_path, monkeypatch, capsys):
    from brain_tumor.synthetic import write_dataset

    data = write_dataset(tmp_path / "data", 2, 0, size=16)
    host = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("CLEARML_API_HOST", host)
    assert main(["run", "--data", str(data), "--out", str(tmp_path / "run")]) == 2
    assert f"The ClearML server {host} is unreachable" in capsys.readouterr().err
    assert not (tmp_path / "run" / "steps").exists()


def test_launch_against_a_closed_port(tmp_path):
    from brain_tumor.synthetic import write_dataset

    data = write_dataset(tmp_path / "data", 2, 0, size=16)
    host = f"http://127.0.0.1:{closed_port()}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CLEARML_API_HOST": host,
           "CLEARML_API_ACCESS_KEY": ACCESS, "CLEARML_API_SECRET_KEY": SECRET}
    result = subprocess.run([sys.executable, "-m", "cli", "launch", "--data", str(data)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert f"error: The ClearML server {host} is unreachable" in result.stderr
    assert "Traceback" not in result.stderr
    for secret in (ACCESS, SECRET):
        assert secret not in result.stdout + result.stderr


def test_launch_refuses_an_unknown_model_before_contacting_anything(tmp_path, capsys):
    assert main(["launch", "--data", str(tmp_path), "--models", "cnn_z"]) == 2
    assert "unknown model(s) 'cnn_z'" in capsys.readouterr().err
