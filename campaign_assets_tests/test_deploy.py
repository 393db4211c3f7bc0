"""The deployment files under deploy/ against what the project really has.

No Docker daemon and no Kubernetes here, so nothing is built or installed;
every file is parsed and checked offline:

- every file under deploy/ has a check below (a new file without one fails);
- Dockerfile: python:3.12-slim, a non-root USER, dependencies only through
  ``pip install --require-hashes -r deploy/requirements.lock``, every COPY
  source exists, the CMD's module imports and its port is the one compose,
  workspace.yaml and the Helm values use;
- requirements.lock: every package pinned with hashes, every dependency of
  pyproject.toml (and its ``deploy`` extra) in it, Dagster at the version the
  tests run;
- compose.yaml (a ``docker compose config``-like check with PyYAML): the four
  services, the code server's command equal to the image's CMD, every
  ``environment`` variable one the code (or Dagster, botocore) reads, the
  workspace file the webserver and daemon load copied into the image, the
  DockerRunLauncher's network and volume declared here, its ``env_vars``
  present in the daemon's environment;
- dagster.yaml: validated by Dagster's own instance loader
  (``dagster._core.instance.config.dagster_instance_config``), the run
  launcher's config by the DockerRunLauncher's config schema, and its queue,
  pools, loggers and run monitoring equal to the repository's dagster.yaml;
- helm/values.yaml, for the official ``dagster/dagster`` chart: the keys we
  set exist in the chart's values schema (the field names below are copied
  from the chart's pydantic schema, helm/dagster/schema/schema/charts/ in
  dagster-io/dagster: DagsterHelmValues, UserDeployment, K8sRunLauncherConfig,
  QueuedRunCoordinator, Daemon, Webserver, PostgreSQL, Global); the instance
  config the chart renders from them (configmap-instance.yaml's mapping, for
  the keys we set) is validated by Dagster's loader and the K8sRunLauncher's
  config schema; the queue limits equal dagster.yaml's. Not checked offline:
  the Kubernetes object schemas inside (securityContext...), template output.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import tomllib
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config

from campaign_assets import io_manager, resources

PROJECT = Path(__file__).resolve().parents[1]
DEPLOY = PROJECT / "deploy"
APP = "/opt/dagster/app"  # the Dockerfile's WORKDIR: the repository root inside the image
CODE_PORT = 4000

# Read by Dagster, botocore/s3fs or the Python image itself, not by our code.
LIBRARY_ENV = {
    "DAGSTER_HOME", "DAGSTER_CURRENT_IMAGE",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
    "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONPATH", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK",
}


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def code_env_names() -> set[str]:
    """Every environment variable the package reads: literal names passed to
    EnvVar / env.get / os.environ, and the names build_resources derives."""
    names: set[str] = set()
    pattern = re.compile(r"""(?:EnvVar|\.get|environ|getenv)\(?\[?\s*["']([A-Z][A-Z0-9_]+)["']""")
    for path in (PROJECT / "campaign_assets").rglob("*.py"):
        names |= set(pattern.findall(path.read_text()))
    for _cls, prefix, token in resources.SERVICE_ENV.values():
        names |= {f"{prefix}_BASE_URL", f"{prefix}_MAX_CONCURRENCY", f"{prefix}_SHARED_SLOTS"} | ({token} - {""})
    names |= {var for _field, var in resources._HTTP_ENV}
    names |= {var for pairs in resources._EXTRA_ENV.values() for _field, var in pairs}
    names |= {io_manager.IO_BASE_ENV, io_manager.ENDPOINT_ENV}
    return names


def instance_env_names(config: Any) -> set[str]:
    """Names a Dagster instance file reads through ``{env: NAME}``."""
    if isinstance(config, dict):
        found = {config["env"]} if set(config) == {"env"} else set()
        return found.union(*(instance_env_names(v) for v in config.values()))
    if isinstance(config, list):
        return set().union(*(instance_env_names(v) for v in config))
    return set()


def allowed_env() -> set[str]:
    return code_env_names() | LIBRARY_ENV | instance_env_names(load("dagster.yaml"))


def assert_module(args: list[str]) -> None:
    """``-m MODULE`` in a code server's arguments imports and has Definitions."""
    module = importlib.import_module(args[args.index("-m") + 1])
    assert isinstance(module.defs, dg.Definitions) or callable(module.defs)


def validate_instance(tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    value, _ = dagster_instance_config(str(tmp_path))
    return dict(value)


def validate_class_config(module: str, cls: str, config: dict[str, Any]) -> None:
    klass = getattr(importlib.import_module(module), cls)
    result = validate_config(klass.config_type(), config)
    assert result.success, [e.message for e in result.errors]


# ---- every file has a check -------------------------------------------------------------
CHECKED = {"Dockerfile", "lock.sh", "requirements.lock", "compose.yaml", "dagster.yaml", "workspace.yaml", "helm/values.yaml"}


def test_every_deploy_file_is_checked() -> None:
    files = {p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file()}
    assert files == CHECKED


# ---- Dockerfile ---------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_cmd() -> list[str]:
    [cmd] = [json.loads(arg) for op, arg in dockerfile() if op == "CMD"]
    return cmd


def test_dockerfile_slim_non_root_hashed_dependencies() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.12-slim")
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    assert steps.index(("USER", users[-1])) > max(i for i, (op, _) in enumerate(steps) if op == "RUN")
    installs = [shlex.split(arg) for op, arg in steps if op == "RUN" and "pip install" in arg]
    assert installs == [["pip", "install", "--require-hashes", "--no-deps", "-r", "deploy/requirements.lock"]]
    for op, arg in steps:
        if op == "COPY":
            *sources, _dest = shlex.split(arg)
            for source in sources:
                assert (PROJECT / source).exists(), source
    env = dict(
        pair.split("=", 1) for op, arg in steps if op == "ENV" for pair in shlex.split(arg)
    )
    assert set(env) <= allowed_env(), set(env) - allowed_env()
    assert env["PYTHONPATH"] == APP and [arg for op, arg in steps if op == "WORKDIR"] == [APP]


def test_dockerfile_cmd_serves_the_code_location() -> None:
    cmd = dockerfile_cmd()
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert_module(cmd)
    assert int(cmd[cmd.index("-p") + 1]) == CODE_PORT
    assert ("EXPOSE", str(CODE_PORT)) in dockerfile()
    # The module is the one the project's own tooling loads.
    tool = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["dagster"]
    assert cmd[cmd.index("-m") + 1] == tool["module_name"]
    # Named as the project names it (dg warns on every load otherwise).
    assert cmd[cmd.index("--location-name") + 1] == tool["code_location_name"]


# ---- requirements.lock --------------------------------------------------------------------
def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_pins_every_dependency_with_hashes() -> None:
    text = (DEPLOY / "requirements.lock").read_text()
    blocks = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", text, re.MULTILINE)
    pins = {normalize(re.sub(r"\[.*\]", "", name)): version for name, version, _ in blocks}
    requirement_lines = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(requirement_lines) == len(blocks), "a requirement without hashes"
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["deploy"]]
    for requirement in wanted:
        name = normalize(re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0])
        assert name in pins, f"{name} (pyproject.toml) is not in deploy/requirements.lock"
    assert pins["dagster"] == dg.__version__, "the lock's Dagster is not the one the tests run: bash deploy/lock.sh"


# ---- compose.yaml -------------------------------------------------------------------------
def compose() -> dict[str, Any]:
    return load("compose.yaml")


def image_path(path: str) -> Path:
    """A path inside the image, as a repository path (the Dockerfile copies the repo root to APP)."""
    assert path.startswith(APP + "/"), path
    return PROJECT / path.removeprefix(APP + "/")


def test_compose_services_and_commands() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "code", "webserver", "daemon"}
    code = services["code"]
    assert (PROJECT / "deploy" / code["build"]["context"] / code["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert code["command"] == dockerfile_cmd()
    assert code["environment"]["DAGSTER_CURRENT_IMAGE"] == code["image"]
    assert str(CODE_PORT) in code["expose"]
    for name, binary in (("webserver", "dagster-webserver"), ("daemon", "dagster-daemon")):
        command = services[name]["command"]
        assert command[0] == binary and services[name]["image"] == code["image"]
        workspace = command[command.index("-w") + 1]
        assert image_path(workspace) == DEPLOY / "workspace.yaml"
    assert "3000:3000" in services["webserver"]["ports"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["daemon"]["volumes"]


def test_compose_sets_only_variables_something_reads() -> None:
    allowed = allowed_env()
    for name in ("code", "webserver", "daemon"):
        env = compose()["services"][name]["environment"]
        assert set(env) <= allowed, (name, set(env) - allowed)
        assert image_path(env["CAMPAIGNS_DIR"]).is_dir()  # the example specs the image carries


def test_compose_networks_and_volumes_are_declared() -> None:
    spec = compose()
    networks = {key: (value or {}).get("name", key) for key, value in spec["networks"].items()}
    volumes = {key: (value or {}).get("name", key) for key, value in spec["volumes"].items()}
    for service in spec["services"].values():
        assert set(service.get("networks", [])) <= set(networks)
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            assert source.startswith("/") or source in volumes, source
    launcher = load("dagster.yaml")["run_launcher"]["config"]
    assert launcher["network"] in networks.values()  # run containers join the same network by its real name
    for mount in launcher["container_kwargs"]["volumes"]:
        assert mount.split(":", 1)[0] in volumes.values()
    daemon_env = spec["services"]["daemon"]["environment"]
    assert set(launcher["env_vars"]) <= set(daemon_env), set(launcher["env_vars"]) - set(daemon_env)


def test_workspace_points_at_the_code_server() -> None:
    [entry] = load("workspace.yaml")["load_from"]
    server = entry["grpc_server"]
    assert server["host"] in compose()["services"] and server["host"] == "code"
    assert server["port"] == CODE_PORT
    assert server["location_name"] == tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["dagster"]["code_location_name"]


# ---- dagster.yaml -------------------------------------------------------------------------
SHARED_INSTANCE_KEYS = ("python_logs", "run_coordinator", "concurrency", "run_monitoring", "telemetry")


def test_instance_validates_and_matches_the_repository(tmp_path: Path) -> None:
    config = load("dagster.yaml")
    validated = validate_instance(tmp_path, config)
    assert validated["run_launcher"]["class"] == "DockerRunLauncher"
    launcher = config["run_launcher"]
    validate_class_config(launcher["module"], launcher["class"], launcher["config"])
    assert set(launcher["config"]["env_vars"]) <= allowed_env()
    assert "postgres" in config["storage"]
    repo = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    for key in SHARED_INSTANCE_KEYS:
        assert config[key] == repo[key], key


def test_instance_check_rejects_an_unknown_key(tmp_path: Path) -> None:
    """The validation above can fail: a misspelt key is an error."""
    config = load("dagster.yaml") | {"run_monitorin": {"enabled": True}}
    with pytest.raises(dg.DagsterInvalidConfigError):
        validate_instance(tmp_path, config)


# ---- helm/values.yaml ---------------------------------------------------------------------
# Field names of the official chart's values schema (dagster-io/dagster,
# helm/dagster/schema/schema/charts/...), for the sections we set.
CHART_KEYS = {
    "dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets", "computeLogManager",
    "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount",
    "global", "retention", "additionalInstanceConfig", "concurrency",
}
GLOBAL_KEYS = {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName", "dagsterInstanceConfigMap"}
WEBSERVER_KEYS = {
    "replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env", "envConfigMaps", "envSecrets",
    "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
    "resources", "readinessProbe", "livenessProbe", "startupProbe", "annotations", "enableReadOnly",
    "dbStatementTimeout", "dbPoolRecycle", "logLevel", "schedulerName", "volumeMounts", "volumes",
}
USER_DEPLOYMENTS_KEYS = {"enabled", "enableSubchart", "imagePullSecrets", "deployments"}
USER_DEPLOYMENT_KEYS = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "port", "env",
    "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
    "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
    "volumes", "schedulerName",
}
K8S_LAUNCHER_KEYS = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile", "envConfigMaps", "envSecrets",
    "envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources", "schedulerName",
    "securityContext", "runK8sConfig",
}
DAEMON_KEYS = {
    "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets",
    "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
    "resources", "livenessProbe", "readinessProbe", "startupProbe", "annotations", "runMonitoring", "runRetries",
    "sensors", "schedules", "schedulerName", "volumeMounts", "volumes",
}
QUEUED_KEYS = {"maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers", "dequeueUseThreads"}
POSTGRES_KEYS = {
    "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword", "postgresqlDatabase",
    "postgresqlParams", "postgresqlScheme", "service",
}
PYTHON_LOGS_KEYS = {"pythonLogLevel", "managedPythonLoggers", "dagsterHandlerConfig"}


def helm() -> dict[str, Any]:
    return load("helm/values.yaml")


def test_helm_values_use_only_the_charts_keys() -> None:
    values = helm()
    assert set(values) <= CHART_KEYS, set(values) - CHART_KEYS
    for section, keys in (
        (values["global"], GLOBAL_KEYS),
        (values["dagsterWebserver"], WEBSERVER_KEYS),
        (values["dagster-user-deployments"], USER_DEPLOYMENTS_KEYS),
        (values["runLauncher"]["config"]["k8sRunLauncher"], K8S_LAUNCHER_KEYS),
        (values["dagsterDaemon"], DAEMON_KEYS),
        (values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"], QUEUED_KEYS),
        (values["postgresql"], POSTGRES_KEYS),
        (values["pythonLogs"], PYTHON_LOGS_KEYS),
    ):
        assert set(section) <= keys, set(section) - keys
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= USER_DEPLOYMENT_KEYS, set(deployment) - USER_DEPLOYMENT_KEYS
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"


def test_helm_user_deployment_is_this_code_location() -> None:
    values = helm()
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert_module(deployment["codeServerArgs"])
    assert deployment["codeServerArgs"] == dockerfile_cmd()[3:dockerfile_cmd().index("-h")]
    assert deployment["port"] == CODE_PORT
    assert set(deployment["env"]) <= allowed_env(), set(deployment["env"]) - allowed_env()
    assert image_path(deployment["env"]["CAMPAIGNS_DIR"]).is_dir()
    assert deployment["securityContext"]["runAsNonRoot"] is True
    # Tokens only from the Secret, and the same Secret wherever code runs.
    secret = deployment["envSecrets"]
    assert secret == values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == values["dagsterWebserver"]["envSecrets"]
    tokens = {token for _cls, _prefix, token in resources.SERVICE_ENV.values() if token}
    assert not tokens & set(deployment["env"]), "a token set in plain values"


def rendered_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The parts of dagster.yaml the chart renders from our values
    (templates/configmap-instance.yaml and its helpers, for the keys we set)."""
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    monitoring = daemon["runMonitoring"]
    return {
        "storage": {"postgres": {"postgres_db": {"username": values["postgresql"]["postgresqlUsername"],
                                                 "password": {"env": "DAGSTER_PG_PASSWORD"},
                                                 "hostname": "dagster-postgresql",
                                                 "db_name": values["postgresql"]["postgresqlDatabase"],
                                                 "port": values["postgresql"]["service"]["port"]}}},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {snake_case(k): v for k, v in queued.items()},
        },
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": k8s_launcher_config(values)},
        "python_logs": {"python_log_level": values["pythonLogs"]["pythonLogLevel"],
                        "managed_python_loggers": values["pythonLogs"]["managedPythonLoggers"]},
        "run_monitoring": {snake_case(k): v for k, v in monitoring.items()},
        "telemetry": values["telemetry"],
        **values["additionalInstanceConfig"],
    }


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def k8s_launcher_config(values: dict[str, Any]) -> dict[str, Any]:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    return {
        "image_pull_policy": launcher["imagePullPolicy"],
        "load_incluster_config": launcher["loadInclusterConfig"],
        "env_config_maps": launcher["envConfigMaps"],
        "env_secrets": [s["name"] for s in launcher["envSecrets"]],
        "env_vars": launcher["envVars"],
        "volume_mounts": launcher["volumeMounts"],
        "volumes": launcher["volumes"],
        "security_context": launcher["securityContext"],
        "instance_config_map": "dagster-instance",
        "service_account_name": "dagster",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "dagster_home": "/opt/dagster/dagster_home",
    }


def test_helm_instance_validates_with_dagsters_limits(tmp_path: Path) -> None:
    values = helm()
    config = rendered_instance(values)
    validate_instance(tmp_path, config)
    validate_class_config("dagster_k8s", "K8sRunLauncher", k8s_launcher_config(values))
    repo = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    for key in ("concurrency", "python_logs", "run_monitoring", "telemetry"):
        assert config[key] == repo[key], key
