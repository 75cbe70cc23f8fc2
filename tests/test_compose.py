"""docker-compose.yml, Dockerfile and .dockerignore, validated offline: no Docker, no network.
(With them the monitoring the file starts: docs/prometheus.yml and docs/grafana-dashboard.json.)

1. The compose file parses as YAML; a duplicate key fails, as it does in Compose.
2. Interpolated with its defaults, it validates against the official Compose Specification JSON
   schema, the copy vendored by the `check-jsonschema` package (a dev dependency).
3. Where a real Compose v2 CLI is on PATH (`docker compose` or `docker-compose`), its
   `config --quiet` must accept the file too; elsewhere that test is skipped.
4. Project invariants that no schema knows: the worker and the API reach the temporal service,
   share the definitions and logs volume, read only settings the engine knows (and those load),
   every `depends_on` target exists and can satisfy its condition, ports do not collide, every
   variable read from the caller's environment has a default or is documented, the search
   attributes registered are workflows/shared.py's, and the Dockerfile copies what exists.
5. The S3 option: MinIO and its bucket-making job run only under the `s3` profile, the engine
   waits for the bucket when they run and not otherwise, and the documented STORAGE_URL for
   it loads as settings naming the bucket the job makes.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from activities.runtime.settings import Settings, load_settings
from api.cli.devstack import poll_limits
from workflows.messages import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_DOC = ROOT / "docs" / "docker-compose.md"
PROMETHEUS_CONFIG = ROOT / "docs" / "prometheus.yml"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"

ENGINE_SERVICES = ("worker", "api")
TEMPORAL_SERVICE = "temporal"
SETUP_SERVICE = "temporal-setup"
SHARED_VOLUME = "engine-data"
PROMETHEUS_SERVICE = "prometheus"
GRAFANA_SERVICE = "grafana"
MINIO_SERVICE = "minio"
MINIO_SETUP_SERVICE = "minio-setup"
S3_PROFILE = "s3"
# Read by the API's coming authentication; not in Settings yet.
FUTURE_SETTINGS = frozenset({"API_KEYS", "API_KEYS_FILE", "AUTH_DISABLED"})
# Read by boto3 itself for s3:// storage (credentials never pass through Settings).
AWS_SDK_VARIABLES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"}
)
# `temporal operator search-attribute create --type` names, by SDK indexed value type.
CLI_TYPES = {
    "TEXT": "Text",
    "KEYWORD": "Keyword",
    "INT": "Int",
    "DOUBLE": "Double",
    "BOOL": "Bool",
    "DATETIME": "Datetime",
    "KEYWORD_LIST": "KeywordList",
}


# --- YAML and interpolation ---------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; Compose refuses the file. So do we."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: merged keys may be overridden, as in Compose
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe


@dataclass(frozen=True)
class Reference:
    """One `${NAME[op arg]}` or `$NAME` in a value."""

    name: str
    operator: str  # "", ":-", "-", ":?", "?", ":+", "+"
    argument: str

    @property
    def has_default(self) -> bool:
        return self.operator in (":-", "-")

    @property
    def is_required(self) -> bool:
        return self.operator in (":?", "?")


_DOLLAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_]\w*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_]\w*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?", re.S)


def references(text: str) -> Iterator[Reference]:
    for match in _DOLLAR.finditer(text):
        if match["escaped"]:
            continue
        if match["named"]:
            yield Reference(match["named"], "", "")
            continue
        braced = _BRACED.fullmatch(match["braced"])
        if braced is None or "$" in (braced["arg"] or ""):
            raise AssertionError(f"interpolation this test cannot read: {match[0]!r}")
        yield Reference(braced["name"], braced["op"] or "", braced["arg"] or "")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one value: `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        (ref,) = references(match[0])
        value = env.get(ref.name)
        if ref.operator == ":-":
            return value if value else ref.argument
        if ref.operator == "-":
            return value if value is not None else ref.argument
        if (ref.operator == ":?" and not value) or (ref.operator == "?" and value is None):
            raise AssertionError(f"required variable {ref.name} is not set: {ref.argument}")
        if ref.operator == ":+":
            return ref.argument if value else ""
        if ref.operator == "+":
            return ref.argument if value is not None else ""
        return value or ""

    return _DOLLAR.sub(replace, text)


def walk_values(node: Any) -> Iterator[str]:
    """Every string value (never a mapping key: Compose interpolates values only)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from walk_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_values(value)
    elif isinstance(node, str):
        yield node


def resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def environment_of(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's `environment`, list or mapping form, as a mapping (None: passed through)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {name: (value if sep else None) for name, sep, value in pairs}
    return {name: (None if value is None else str(value)) for name, value in env.items()}


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The file as written, before interpolation."""
    document = load_yaml(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def resolved(raw: dict[str, Any]) -> dict[str, Any]:
    """The file as Compose sees it when the caller sets none of its variables."""
    return resolve(raw, {})


@pytest.fixture(scope="module")
def services(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resolved["services"]


@pytest.fixture(scope="module")
def documented() -> str:
    return COMPOSE_DOC.read_text(encoding="utf-8")


# --- schema -------------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    pytest.importorskip(
        "check_jsonschema",
        reason="check-jsonschema (a dev dependency) vendors the official compose-spec schema",
    )
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))


def schema_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    # No format checker: the spec's "duration" means Go durations (5s), not ISO 8601.
    validator = validator_class(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def test_compose_file_parses_with_the_expected_services(raw: dict[str, Any]) -> None:
    assert set(raw["services"]) == {
        "postgresql",
        TEMPORAL_SERVICE,
        SETUP_SERVICE,
        "temporal-ui",
        *ENGINE_SERVICES,
        PROMETHEUS_SERVICE,
        GRAFANA_SERVICE,
        MINIO_SERVICE,
        MINIO_SETUP_SERVICE,
        "engine-db",
        "engine-db-migrate",
    }
    assert set(raw["volumes"]) >= {SHARED_VOLUME}


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key"):
        load_yaml("services:\n  a: {image: x:1}\n  a: {image: y:1}\n")


def test_matches_the_official_compose_specification_schema(resolved: dict[str, Any]) -> None:
    schema = compose_schema()
    assert "Compose" in schema.get("title", "") or "compose" in schema.get("$id", "")
    assert schema_errors(schema, resolved) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda doc: doc["services"]["api"].update(healtcheck={}), "healtcheck"),
        (
            lambda doc: doc["services"]["worker"]["depends_on"]["temporal"].update(
                condition="service_happy"
            ),
            "service_happy",
        ),
        (lambda doc: doc["services"]["api"].update(restart=["always"]), "restart"),
        (lambda doc: doc.update(volume={}), "volume"),
    ],
    ids=["misspelt-key", "bad-condition", "bad-type", "unknown-top-level"],
)
def test_the_schema_catches_mistakes(resolved: dict[str, Any], mutate: Any, expected: str) -> None:
    """The schema is strict where we rely on it (guards against a permissive or empty one)."""
    schema = compose_schema()
    broken = copy.deepcopy(resolved)
    mutate(broken)
    errors = schema_errors(schema, broken)
    assert errors
    assert any(expected in error for error in errors), errors


def _compose_cli_environment(raw: dict[str, Any], home: Path) -> dict[str, str]:
    """The caller's environment minus anything that would change the file or reach a daemon."""
    read = {ref.name for value in walk_values(raw) for ref in references(value)}
    passed = {
        name
        for service in raw["services"].values()
        for name, value in environment_of(service).items()
        if value is None
    }
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in read | passed and not name.startswith(("DOCKER_", "COMPOSE_"))
    }
    # `config` needs no engine; a socket that does not exist makes sure none is contacted.
    env["DOCKER_HOST"] = f"unix://{home / 'no-docker.sock'}"
    env["DOCKER_CONFIG"] = str(home)
    return env


def _compose_cli(env: dict[str, str]) -> list[str] | None:
    candidates = []
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    if standalone := shutil.which("docker-compose"):
        candidates.append([standalone])
    for command in candidates:
        try:
            found = subprocess.run(
                [*command, "version", "--short"],
                capture_output=True,
                text=True,
                timeout=30,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        major = found.stdout.strip().lstrip("v").split(".")[0]
        if found.returncode == 0 and major.isdigit() and int(major) >= 2:
            return command
    return None


def test_a_real_compose_cli_accepts_the_file(raw: dict[str, Any], tmp_path: Path) -> None:
    env = _compose_cli_environment(raw, tmp_path)
    command = _compose_cli(env)
    if command is None:
        pytest.skip("no Compose v2 CLI on PATH (`docker compose` or `docker-compose`)")
    checked = subprocess.run(
        [*command, "--file", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


# --- the engine services ------------------------------------------------------------------


def test_worker_and_api_run_the_project_image(services: dict[str, dict[str, Any]]) -> None:
    assert services["worker"]["command"] == ["python", "worker.py"]
    assert services["api"]["command"] == [
        "uvicorn",
        "--factory",
        "api.server.main:create_app",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    for name in ENGINE_SERVICES:
        service = services[name]
        assert service["restart"] == "unless-stopped", name
        assert service["build"] == services["worker"]["build"], name
        assert service["image"] == services["worker"]["image"], name

    from api.server.main import create_app

    assert callable(create_app)


def test_every_build_uses_an_existing_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    by_image: dict[str, Any] = {}
    for name, service in services.items():
        if "build" not in service:
            continue
        build = service["build"]
        build = {"context": build} if isinstance(build, str) else build
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.is_dir(), f"{name}: build context {context} is missing"
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        assert dockerfile == DOCKERFILE, f"{name} builds from {dockerfile}, not the project's"
        if image := service.get("image"):
            # Two services naming one image must build it the same way.
            assert by_image.setdefault(image, build) == build, image


def test_the_engine_reaches_the_temporal_service(services: dict[str, dict[str, Any]]) -> None:
    temporal = services[TEMPORAL_SERVICE]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    assert temporal["environment"]["DB"] == "postgres12"
    assert temporal["environment"]["POSTGRES_SEEDS"] in services
    expected = f"{TEMPORAL_SERVICE}:7233"
    for name in (*ENGINE_SERVICES, SETUP_SERVICE, "temporal-ui"):
        assert environment_of(services[name])["TEMPORAL_ADDRESS"] == expected, name
    for name in ENGINE_SERVICES:
        assert TEMPORAL_SERVICE in services[name]["depends_on"], name


def test_one_namespace_everywhere(raw: dict[str, Any]) -> None:
    """auto-setup creates the namespace the setup job and the engine then use."""
    written = raw["services"]
    namespace = environment_of(written["worker"])["TEMPORAL_NAMESPACE"]
    assert environment_of(written["api"])["TEMPORAL_NAMESPACE"] == namespace
    assert environment_of(written[TEMPORAL_SERVICE])["DEFAULT_NAMESPACE"] == namespace
    assert environment_of(written[SETUP_SERVICE])["TEMPORAL_NAMESPACE"] == namespace


def _mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Volume mounts in long form (`source`, `target`, `read_only`, `type`)."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append(volume)
            continue
        parts = volume.split(":")
        source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
        mode = parts[2] if len(parts) > 2 else ""
        kind = "bind" if source and source.startswith((".", "/", "~")) else "volume"
        mounts.append(
            {
                "type": kind,
                "source": source,
                "target": target,
                "read_only": "ro" in mode.split(","),
            }
        )
    return mounts


def test_definitions_and_logs_live_on_the_shared_volume(
    resolved: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert SHARED_VOLUME in resolved["volumes"]
    targets = set()
    for name in ENGINE_SERVICES:
        mounts = [m for m in _mounts(services[name]) if m["source"] == SHARED_VOLUME]
        assert len(mounts) == 1, f"{name} does not mount {SHARED_VOLUME}"
        assert mounts[0]["type"] == "volume" and not mounts[0]["read_only"], name
        target = PurePosixPath(mounts[0]["target"])
        targets.add(target)
        env = environment_of(services[name])
        for variable in ("WORKFLOW_DEFINITIONS_DIR", "WORKFLOW_LOG_DIR"):
            path = PurePosixPath(env[variable] or "")
            assert path.is_absolute() and path.is_relative_to(target), (name, variable, path)
    assert len(targets) == 1, f"worker and api mount {SHARED_VOLUME} at different paths"


def test_every_named_volume_is_declared(
    resolved: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(resolved.get("volumes") or {})
    for name, service in services.items():
        for mount in _mounts(service):
            if mount["type"] == "volume" and mount["source"]:
                assert mount["source"] in declared, (name, mount["source"])
            if mount["type"] == "bind":
                assert (COMPOSE_FILE.parent / mount["source"]).exists(), (name, mount["source"])


def test_examples_are_mounted_read_only(services: dict[str, dict[str, Any]]) -> None:
    examples = [
        m
        for m in _mounts(services["api"])
        if m["type"] == "bind" and Path(m["source"]).name == "examples"
    ]
    assert len(examples) == 1 and examples[0]["read_only"]


def test_engine_environment_names_known_settings(services: dict[str, dict[str, Any]]) -> None:
    known = {name.upper() for name in Settings.model_fields} | FUTURE_SETTINGS | AWS_SDK_VARIABLES
    for name in ENGINE_SERVICES:
        unknown = set(environment_of(services[name])) - known
        assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


def test_engine_environment_loads_as_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the caller setting nothing, the defaults make a valid, compose-shaped configuration."""
    for name in {n.upper() for n in Settings.model_fields} | FUTURE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name in ENGINE_SERVICES:
        env = environment_of(services[name])
        with monkeypatch.context() as scoped:
            for variable, value in env.items():
                if value is not None:  # a pass-through the caller did not set stays unset
                    scoped.setenv(variable, value)
            settings = load_settings()
        assert settings.temporal_address == f"{TEMPORAL_SERVICE}:7233"
        assert settings.workflow_definitions_dir == Path("/data/definitions")
        assert settings.workflow_log_dir == Path("/data/workflow_logs")
        assert settings.storage_url == "file:///data"
        assert settings.payload_store_dir == Path("/data/payloads")
        assert settings.s3_endpoint_url is None
        assert settings.openrouter_api_key is None
        assert settings.temporal_api_key is None
        assert settings.temporal_tls is False


def _published_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(protocol, host port, container port) for each published port."""
    published = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                protocol = port.get("protocol", "tcp")
                published.append((protocol, int(port["published"]), int(port["target"])))
            continue
        spec, _, protocol = str(port).partition("/")
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:
            continue  # container port only: Docker picks a free host port
        host, container = parts[-2], parts[-1]
        assert "-" not in host, f"port ranges are not used here: {port}"
        published.append((protocol or "tcp", int(host), int(container)))
    return published


def test_published_ports_do_not_collide(services: dict[str, dict[str, Any]]) -> None:
    owners: dict[tuple[str, int], str] = {}
    for name, service in services.items():
        for protocol, host, _ in _published_ports(service):
            owner = owners.setdefault((protocol, host), name)
            assert owner == name, f"host port {host}/{protocol}: {owner} and {name}"


def test_urls_match_the_published_ports(services: dict[str, dict[str, Any]]) -> None:
    ui_ports = {host: target for _, host, target in _published_ports(services["temporal-ui"])}
    api_ports = {host: target for _, host, target in _published_ports(services["api"])}
    assert ui_ports == {8233: 8080}
    assert api_ports == {8000: 8000}
    for name in ENGINE_SERVICES:
        env = environment_of(services[name])
        assert env["TEMPORAL_UI_URL"] == "http://localhost:8233"
        assert env["API_PUBLIC_URL"] == "http://localhost:8000"


# --- dependencies, health, images ---------------------------------------------------------


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {name: {"condition": "service_started"} for name in depends}
    return depends


def test_every_dependency_exists_and_can_satisfy_its_condition(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, spec in _depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                check = services[target].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", (
                    f"{name} waits for {target} to finish, but {target} restarts"
                )


def test_dependencies_have_no_cycle(services: dict[str, dict[str, Any]]) -> None:
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"dependency cycle: {' -> '.join((*path, name))}"
        state[name] = "open"
        for target in _depends_on(services[name]):
            visit(target, (*path, name))
        state[name] = "done"

    for name in services:
        visit(name, ())


def test_the_engine_waits_for_temporal_and_its_setup(services: dict[str, dict[str, Any]]) -> None:
    assert _depends_on(services[TEMPORAL_SERVICE])["postgresql"]["condition"] == "service_healthy"
    for name in ENGINE_SERVICES:
        depends = _depends_on(services[name])
        assert depends[TEMPORAL_SERVICE]["condition"] == "service_healthy", name
        assert depends[SETUP_SERVICE]["condition"] == "service_completed_successfully", name
    for name in ("postgresql", TEMPORAL_SERVICE, "api"):
        assert services[name]["healthcheck"]["test"], name


def test_every_pulled_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        reference = image.rsplit("/", 1)[-1]
        tag = reference.partition(":")[2]
        assert "@sha256:" in image or (tag and tag != "latest" and any(c.isdigit() for c in tag)), (
            f"{name}: pin {image} to a version tag"
        )
    setup_tag = services[SETUP_SERVICE]["image"].partition(":")[2]
    server_tag = services[TEMPORAL_SERVICE]["image"].partition(":")[2]
    assert setup_tag.startswith(f"{server_tag}-") or setup_tag == server_tag


# --- variables read from the caller's environment -----------------------------------------


def _interpolations(raw: dict[str, Any]) -> list[Reference]:
    found = [ref for value in walk_values(raw) for ref in references(value)]
    assert found, "expected ${VAR:-default} interpolations in docker-compose.yml"
    return found


def _pass_through(raw: dict[str, Any]) -> set[str]:
    return {
        name
        for service in raw["services"].values()
        for name, value in environment_of(service).items()
        if value is None
    }


def test_interpolations_have_defaults_or_are_documented(
    raw: dict[str, Any], documented: str
) -> None:
    undocumented = sorted(
        {
            ref.name
            for ref in _interpolations(raw)
            if not (ref.has_default or ref.is_required) and f"`{ref.name}`" not in documented
        }
    )
    assert not undocumented, f"no default and not in docs/docker-compose.md: {undocumented}"


def test_every_variable_read_from_the_caller_is_documented(
    raw: dict[str, Any], documented: str
) -> None:
    read = {ref.name for ref in _interpolations(raw)} | _pass_through(raw)
    missing = sorted(name for name in read if f"`{name}`" not in documented)
    assert not missing, f"document these in docs/docker-compose.md: {missing}"


def test_shell_variables_in_commands_are_escaped(raw: dict[str, Any]) -> None:
    """`$$name` reaches the container's shell; a bare `$name` would be Compose's, set or not."""
    script = " ".join(walk_values(raw["services"][SETUP_SERVICE]["command"]))
    assert not list(references(script)), [ref.name for ref in references(script)]
    assert "$$SEARCH_ATTRIBUTES" in script


def test_interpolation_reads_like_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${UNSET:-d} ${EMPTY-d} ${UNSET-d}", env) == (
        "x d d  d"
    )
    assert interpolate("$$SET $${SET} $SET ${SET:+alt} ${UNSET:+alt}", env) == "$SET ${SET} x alt "
    with pytest.raises(AssertionError, match="UNSET"):
        interpolate("${UNSET:?set it}", env)


# --- search attributes --------------------------------------------------------------------


def test_setup_registers_exactly_the_engines_search_attributes(
    services: dict[str, dict[str, Any]],
) -> None:
    declared = environment_of(services[SETUP_SERVICE])["SEARCH_ATTRIBUTES"] or ""
    registered = dict(pair.split("=", 1) for pair in declared.split())
    expected = {key.name: CLI_TYPES[key.indexed_value_type.name] for key in SEARCH_ATTRIBUTES}
    assert registered == expected
    setup = services[SETUP_SERVICE]
    assert setup["image"].startswith("temporalio/admin-tools:")
    assert "temporal operator search-attribute create" in " ".join(setup["command"])


# --- Temporal's dynamic config -------------------------------------------------------------


def test_temporal_runs_with_the_dev_servers_poll_limits(
    resolved: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """The compose server gets the same lifted history poll limits as `wfe dev`."""
    temporal = services[TEMPORAL_SERVICE]
    (mount,) = temporal["configs"]
    target = PurePosixPath(mount["target"])
    configured = environment_of(temporal)["DYNAMIC_CONFIG_FILE_PATH"] or ""
    # auto-setup resolves the path against /etc/temporal.
    assert PurePosixPath("/etc/temporal", configured) == target
    content = load_yaml(resolved["configs"][mount["source"]]["content"])
    values = {name: entries[0]["value"] for name, entries in content.items()}
    assert {name: values.get(name) for name in poll_limits()} == poll_limits()
    assert all(len(entries) == 1 and set(entries[0]) == {"value"} for entries in content.values())


# --- Dockerfile and .dockerignore ---------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def words(self) -> list[str]:
        if self.arguments.startswith("["):
            return list(json.loads(self.arguments))
        return self.arguments.split()


def dockerfile_instructions(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are dropped, as Docker does
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rules, enough for top-level names: last match wins."""
    path = path.strip("/")
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        parts = PurePosixPath(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            ignored = not negate
    return ignored


def copy_sources(instruction: Instruction) -> list[str]:
    words = [w for w in instruction.words() if not w.startswith("--")]
    return words[:-1]


def test_dockerfile_builds_on_python_311_slim_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    froms = [i.words()[0] for i in instructions if i.keyword == "FROM"]
    assert froms == ["python:3.11-slim"]
    users = [i.arguments for i in instructions if i.keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    runs = " ".join(i.arguments for i in instructions if i.keyword == "RUN")
    for directory in ("/data/definitions", "/data/workflow_logs"):
        assert directory in runs, f"the image should create {directory} for the volume"


def test_dockerfile_copy_sources_exist_and_are_not_ignored() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    patterns = dockerignore_patterns()
    copies = [i for i in instructions if i.keyword in ("COPY", "ADD")]
    assert copies
    for instruction in copies:
        assert not any(w.startswith("--from") for w in instruction.words())
        for source in copy_sources(instruction):
            assert (ROOT / source).exists(), f"{instruction.keyword} {source}: no such path"
            assert not is_ignored(source, patterns), f"{source} is excluded by .dockerignore"


def test_dockerfile_copies_the_whole_package_before_installing_it() -> None:
    """`pip install .` needs pyproject's readme, modules and packages in the image."""
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    install = next(
        n
        for n, i in enumerate(instructions)
        if i.keyword == "RUN" and re.search(r"\bpip install\b.*\s\.(\s|$)", i.arguments)
    )
    copied = {
        source.strip("/")
        for i in instructions[:install]
        if i.keyword == "COPY"
        for source in copy_sources(i)
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = pyproject["tool"]["setuptools"]
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {f"{module}.py" for module in setuptools.get("py-modules", [])}
    needed |= {
        pattern.rstrip("*").rstrip(".")
        for pattern in setuptools["packages"]["find"]["include"]
        if not pattern.rstrip("*").rstrip(".").count(".")
    }
    assert needed <= copied, f"copy before `pip install .`: {sorted(needed - copied)}"
    after = {
        source.strip("/")
        for i in instructions[install:]
        if i.keyword == "COPY"
        for source in copy_sources(i)
    }
    assert "examples" in copied | after


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = dockerignore_patterns()
    for path in (
        ".venv",
        "storage",
        ".git",
        "definitions",
        "tests",
        "bench",
        ".pytest_cache",
        ".ruff_cache",
        ".mypy_cache",
        "workflows/__pycache__",
        ".env",
    ):
        assert is_ignored(path, patterns), f"{path} should be in .dockerignore"
    for path in ("worker.py", "workflows", "api", "activities", "examples", "README.md"):
        assert not is_ignored(path, patterns), f"{path} must stay in the build context"


# --- monitoring: Prometheus and Grafana ---------------------------------------------------


def _mount_of(service: dict[str, Any], source: str) -> dict[str, Any]:
    (mount,) = [m for m in _mounts(service) if m["source"] == source]
    return mount


def _config_content(resolved: dict[str, Any], service: dict[str, Any], target: str) -> Any:
    (mount,) = [c for c in service.get("configs") or [] if c["target"] == target]
    return load_yaml(resolved["configs"][mount["source"]]["content"])


def _scrape_targets() -> dict[str, tuple[str, set[tuple[str, int]]]]:
    """job name -> (metrics path, {(service, port)}) from docs/prometheus.yml."""
    config = load_yaml(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {}
    for job in config["scrape_configs"]:
        targets: set[tuple[str, int]] = set()
        for sd in job.get("dns_sd_configs") or []:
            assert sd.get("type", "SRV") == "A", "A records: one target per container"
            targets |= {(name, int(sd["port"])) for name in sd["names"]}
        for static in job.get("static_configs") or []:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                targets.add((host, int(port)))
        jobs[job["job_name"]] = (job.get("metrics_path", "/metrics"), targets)
    return jobs


def test_the_worker_serves_metrics_to_the_compose_network(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = environment_of(services["worker"])
    api = environment_of(services["api"])
    address = worker["WORKER_METRICS_ADDRESS"] or ""
    host, _, port = address.rpartition(":")
    assert host == "0.0.0.0" and port.isdigit(), "reachable from the prometheus container"
    assert "WORKER_METRICS_ADDRESS" not in api, "the API serves /metrics on its own port"
    assert not any(int(port) in (h, c) for _, h, c in _published_ports(services["worker"]))
    # Everything else the worker gets is the shared engine environment (the YAML merge).
    # (The API adds DATABASE_URL: only it opens the control-plane database.)
    shared = {k: v for k, v in api.items() if k != "DATABASE_URL"}
    assert {k: v for k, v in worker.items() if k != "WORKER_METRICS_ADDRESS"} == shared
    for name in {n.upper() for n in Settings.model_fields}:
        monkeypatch.delenv(name, raising=False)
    for variable, value in worker.items():
        if value is not None:
            monkeypatch.setenv(variable, value)
    assert load_settings().worker_metrics_address == address


def test_prometheus_scrapes_the_api_and_every_worker(
    resolved: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    prometheus = services[PROMETHEUS_SERVICE]
    assert prometheus["image"].startswith("prom/prometheus:")
    mount = _mount_of(prometheus, "./docs/prometheus.yml")
    assert mount["read_only"] and f"--config.file={mount['target']}" in prometheus["command"]
    jobs = _scrape_targets()
    api_port = int(services["api"]["command"][services["api"]["command"].index("--port") + 1])
    worker_port = int(
        (environment_of(services["worker"])["WORKER_METRICS_ADDRESS"] or "").rpartition(":")[2]
    )
    assert jobs["wfe-api"] == ("/metrics", {("api", api_port)})
    assert jobs["wfe-worker"] == ("/metrics", {("worker", worker_port)})
    for _, targets in jobs.values():
        assert {name for name, _ in targets} <= set(services), targets
    # /metrics takes a key (it names definition ids): Prometheus sends the API's own
    # API_METRICS_KEY, from a config holding the same value, as a bearer token.
    api_env = environment_of(services["api"])
    assert api_env["API_METRICS_PUBLIC"] is None  # not opened: the default (false)
    config = load_yaml(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    (api_job,) = [job for job in config["scrape_configs"] if job["job_name"] == "wfe-api"]
    key_file = api_job["authorization"]["credentials_file"]
    assert api_job["authorization"].get("type", "Bearer") == "Bearer"
    (mount,) = [c for c in prometheus.get("configs") or [] if c["target"] == key_file]
    assert resolved["configs"][mount["source"]]["content"] == api_env["API_METRICS_KEY"]
    assert load_settings(api_metrics_key=api_env["API_METRICS_KEY"]).api_metrics_key
    assert prometheus["healthcheck"]["test"]


def test_grafana_is_provisioned_with_the_engine_dashboard(
    resolved: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    grafana = services[GRAFANA_SERVICE]
    assert grafana["image"].startswith("grafana/grafana:")
    assert _depends_on(grafana)[PROMETHEUS_SERVICE]["condition"] == "service_healthy"
    sources = _config_content(
        resolved, grafana, "/etc/grafana/provisioning/datasources/workflow-engine.yaml"
    )
    (source,) = sources["datasources"]
    prometheus_port = _published_ports(services[PROMETHEUS_SERVICE])[0][2]
    assert source["type"] == "prometheus"
    assert source["url"] == f"http://{PROMETHEUS_SERVICE}:{prometheus_port}"
    providers = _config_content(
        resolved, grafana, "/etc/grafana/provisioning/dashboards/workflow-engine.yaml"
    )
    (provider,) = providers["providers"]
    mount = _mount_of(grafana, "./docs/grafana-dashboard.json")
    assert mount["read_only"]
    assert PurePosixPath(mount["target"]).parent == PurePosixPath(provider["options"]["path"])
    home = environment_of(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == mount["target"]

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    queries = [panel for panel in panels if panel["type"] != "row"]
    assert queries
    for panel in queries:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]


def test_the_dashboard_queries_the_engines_own_metric_names() -> None:
    """Every wfe_* name a panel queries is one the API or the worker exports (the Temporal
    SDK's temporal_* names are checked against a real scrape in tests/test_metrics.py)."""
    from activities.metrics import AI_COST_USD_TOTAL, AI_TOKENS_TOTAL
    from api.server.metrics import ApiMetrics
    from workflows.metrics import STEP_DURATION_SECONDS, STEPS_TOTAL

    exported = {STEPS_TOTAL, AI_TOKENS_TOTAL, AI_COST_USD_TOTAL}
    exported |= {f"{STEP_DURATION_SECONDS}_{suffix}" for suffix in ("bucket", "sum", "count")}
    for family in ApiMetrics().registry.collect():
        exported |= {sample.name for sample in family.samples} | {
            f"{family.name}_{suffix}" for suffix in ("total", "bucket", "sum", "count")
        }
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    queried = {name for expr in exprs for name in re.findall(r"\bwfe_\w+", expr)}
    assert queried, "the dashboard shows the engine's metrics"
    assert queried <= exported, sorted(queried - exported)


# --- the S3 option (docs/storage.md) ------------------------------------------------------


def test_minio_and_its_bucket_job_run_only_under_the_s3_profile(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        expected = [S3_PROFILE] if name in (MINIO_SERVICE, MINIO_SETUP_SERVICE) else None
        assert service.get("profiles") == expected, name  # plain `up` is unchanged
    assert services[MINIO_SETUP_SERVICE]["image"] == services[MINIO_SERVICE]["image"]
    for _, host, _ in _published_ports(services[MINIO_SERVICE]):
        assert host in (9000, 9001)
    for port in services[MINIO_SERVICE]["ports"]:
        assert str(port).startswith("127.0.0.1:"), port  # loopback only


def test_the_engine_waits_for_the_bucket_only_when_minio_runs(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ENGINE_SERVICES:
        depends = _depends_on(services[name])[MINIO_SETUP_SERVICE]
        assert depends == {"condition": "service_completed_successfully", "required": False}
    setup = services[MINIO_SETUP_SERVICE]
    assert _depends_on(setup)[MINIO_SERVICE]["condition"] == "service_healthy"
    assert setup["restart"] == "no"
    assert services[MINIO_SERVICE]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]


def test_minio_and_its_job_share_credentials(raw: dict[str, Any]) -> None:
    server = environment_of(raw["services"][MINIO_SERVICE])
    job = environment_of(raw["services"][MINIO_SETUP_SERVICE])
    for variable in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
        assert server[variable] == job[variable], variable
    script = " ".join(walk_values(raw["services"][MINIO_SETUP_SERVICE]["command"]))
    assert not list(references(script)), [ref.name for ref in references(script)]
    assert 'mc mb --ignore-existing "engine/$$S3_BUCKET"' in script


def test_the_documented_s3_configuration_loads_and_names_the_bucket_the_job_makes(
    services: dict[str, dict[str, Any]], documented: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activities.runtime.storage.location import S3Location, parse_storage_url

    urls = set(re.findall(r"STORAGE_URL=(s3://\S+)", documented))
    assert urls, "docs/docker-compose.md shows no STORAGE_URL=s3://... for the s3 profile"
    bucket = environment_of(services[MINIO_SETUP_SERVICE])["S3_BUCKET"]
    endpoints = set(re.findall(r"S3_ENDPOINT_URL=(\S+)", documented))
    assert endpoints == {f"http://{MINIO_SERVICE}:9000"}
    for url in urls:
        location = parse_storage_url(url)
        assert isinstance(location, S3Location) and location.bucket == bucket, url
    for name in {n.upper() for n in Settings.model_fields} | FUTURE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    env = environment_of(services["worker"])
    for variable, value in env.items():
        if value is not None:
            monkeypatch.setenv(variable, value)
    monkeypatch.setenv("STORAGE_URL", sorted(urls)[0])
    monkeypatch.setenv("S3_ENDPOINT_URL", sorted(endpoints)[0])
    settings = load_settings()
    assert settings.storage_url == sorted(urls)[0]
    assert settings.s3_endpoint_url == f"http://{MINIO_SERVICE}:9000"
