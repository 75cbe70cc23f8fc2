"""All configuration in one settings object, read from the environment.

Never imported by workflow code: the interpreter stays free of I/O and environment reads.
Bad configuration fails at start-up with a message naming the variable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from activities.providers import ProviderConfig, parse_providers
from activities.runtime.database_url import embedded_database_url
from activities.runtime.setting_types import AIRateLimit as AIRateLimit
from activities.runtime.setting_types import (
    AIRateLimits,
    BindAddress,
    DatabaseUrl,
    HostConcurrency,
    HostPort,
    HttpBaseUrl,
    LogFormat,
    MetricsKey,
    OptionalText,
    OtlpEndpoint,
    ProvidersText,
    S3Endpoint,
    StorageUrl,
)
from activities.runtime.storage.location import (
    LOGS_AREA,
    PAYLOADS_AREA,
    FileLocation,
    parse_storage_url,
)
from workflows.errors import ConfigurationError

DEFAULT_OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"


class Settings(BaseSettings):
    """Every setting the worker, the API and the CLI read. Names are the env variables."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # Temporal
    temporal_address: HostPort = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "workflow-engine"
    temporal_tls: bool = False
    temporal_tls_cert_path: Path | None = None
    temporal_tls_key_path: Path | None = None
    temporal_tls_ca_path: Path | None = None
    temporal_api_key: SecretStr | None = None
    temporal_ui_url: HttpBaseUrl = "http://localhost:8233"

    # AI provider
    openrouter_api_key: SecretStr | None = None
    openrouter_base_url: HttpBaseUrl = DEFAULT_OPENROUTER_BASE_URL
    openrouter_app_title: str = "workflow-engine"
    openrouter_referer: str | None = None
    # Named OpenAI-compatible providers as JSON (docs/ai.md, "Providers"): a step's
    # `model: "<name>:<model>"` goes there. Read by the worker (routing) and the API (checks
    # at save), so both must be given the same value.
    ai_providers: ProvidersText = None

    # Storage
    workflow_definitions_dir: Path = Path("definitions")
    # Where execution logs and large values live (docs/storage.md): file://<dir> or
    # s3://<bucket>/<prefix>. With file://, WORKFLOW_LOG_DIR and PAYLOAD_STORE_DIR default to
    # <dir>/workflow_logs and <dir>/payloads (and may name other directories); with s3:// they
    # are not used.
    storage_url: StorageUrl = "file://storage"
    # An S3-compatible server (MinIO, Ceph, ...); unset: AWS S3. Credentials are boto3's
    # (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a profile or a role), never settings here.
    s3_endpoint_url: S3Endpoint = None
    # The bucket's region; unset, boto3 reads AWS_DEFAULT_REGION.
    aws_region: OptionalText = None
    workflow_log_dir: Path = Path("storage/workflow_logs")
    # The control plane's database (docs/database.md): definitions and their versions, API
    # keys, triggers. Unset: SQLite in the STORAGE_URL directory (storage/wfe.db), migrated by
    # the API itself; set (sqlite:///path or postgresql://user:pass@host/db): migrated by
    # `wfe db upgrade`, and PostgreSQL lets several API processes share one control plane.
    database_url: DatabaseUrl = None

    # Execution log rotation (compress finished logs, then delete the oldest)
    log_compress_after_seconds: float = Field(3600.0, ge=0)
    log_max_age_days: float = Field(30.0, gt=0)
    log_max_files: int = Field(10_000, ge=1)
    log_max_total_mb: float = Field(1024.0, gt=0)
    log_rotation_interval_seconds: float = Field(300.0, gt=0)
    # How often the worker closes the logs of runs Temporal ended without our code (terminate,
    # run timeout): the log says `terminated` within this long.
    log_reconcile_interval_seconds: float = Field(30.0, gt=0)

    # Secrets for `{secrets.NAME}`: env variables with this prefix, and/or a JSON file.
    secret_env_prefix: str = "WORKFLOW_SECRET_"  # noqa: S105 - a name prefix, not a secret
    secrets_file: Path | None = None

    # HTTP steps
    http_max_response_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    http_user_agent: str = "workflow-engine/0.1"
    # SSRF guard: loopback, private, link-local and metadata addresses are refused unless
    # listed here (comma-separated hosts, IPs or CIDRs, e.g. "127.0.0.1,10.0.0.0/8,api.internal").
    http_allowed_hosts: str = ""
    http_max_redirects: int = Field(5, ge=0, le=20)

    # Long runs continue as new after this many steps (or sooner, when Temporal suggests it)
    execution_max_steps_per_run: int = Field(1000, ge=10)
    # Bounds every run holds to (a definition may lower them; README "Limits"): steps per
    # execution, the whole-run timeout when the definition sets none (and the most it may
    # set), and the size of a value computed inside a run (set, CEL, signal payloads).
    execution_max_steps: int = Field(100_000, ge=10)
    execution_timeout_seconds: float = Field(30 * 86400, gt=0, le=366 * 86400)
    max_value_bytes: int = Field(1024 * 1024, ge=1024)
    # Signals buffered per name and run before the API refuses more (429), and the signals
    # one key may send per minute.
    signal_buffer_max: int = Field(100, ge=1, le=10_000)
    # Items one foreach step may take; more fails the step InvalidRequest.
    foreach_max_items: int = Field(10_000, ge=1, le=1_000_000)
    # Executions one start's tree of sub-workflows and foreach shares may start
    # (workflows/run_tree.py); a child past it fails ExecutionLimitExceeded.
    execution_max_descendants: int = Field(1000, ge=0, le=1_000_000)
    api_signal_rate_per_minute: float = Field(120.0, gt=0)

    # Large step results are stored by reference (the reference travels in history)
    payload_store_dir: Path = Path("storage/payloads")
    large_value_bytes: int = Field(256 * 1024, ge=1024)

    # Worker
    worker_max_concurrent_activities: int = Field(100, ge=1)
    worker_graceful_shutdown_seconds: float = Field(10.0, ge=0)
    # Temporal's workflow sandbox re-checks every import and runs each payload conversion
    # through it: ~2 ms of worker CPU per step (bench/README.md). The interpreter is this
    # project's own deterministic code, so the worker runs it unsandboxed; the test suite
    # runs it sandboxed (WORKER_WORKFLOW_SANDBOX=true), where a stray clock or file access
    # in workflow code fails loudly.
    worker_workflow_sandbox: bool = False
    # Runs kept in the worker's memory between workflow tasks (~90 kB each, bench/README.md);
    # past it the least recent is evicted and replayed from its history when it next moves,
    # so a worker's memory stays flat however many runs wait on it.
    worker_max_cached_workflows: int = Field(500, ge=0)
    # How long a run's next task waits for the worker that has it cached before any worker
    # may take it (replaying its whole history). Shorter resumes a killed worker's runs
    # sooner; too short makes a busy worker's tasks move and replay, which makes it busier.
    worker_sticky_timeout_seconds: float = Field(10.0, gt=0, le=600)

    # Observability (docs/observability.md). Unset or default: nothing is served or exported.
    # IP:port the worker serves Prometheus metrics on (Temporal SDK + wfe_* metrics).
    worker_metrics_address: BindAddress = None
    # GET /metrics on the API: it names every definition's id, which the API otherwise shows
    # only to keys scoped to it, so it takes an admin key or API_METRICS_KEY (a key that
    # reads /metrics and nothing else: what Prometheus gets). true: anyone who reaches the port.
    api_metrics_public: bool = False
    api_metrics_key: MetricsKey = None
    # Distinct `model` label values the worker's wfe_ai_* metrics keep (models come from
    # definitions and run inputs); the rest are counted as model="other".
    worker_metrics_max_models: int = Field(50, ge=1, le=10_000)
    # `text` (human lines) or `json` (one object per line) for the worker's and API's logs.
    log_format: LogFormat = "text"
    # OTLP/HTTP collector base URL (the standard OpenTelemetry variable): set, the API and
    # the worker export traces to <url>/v1/traces.
    otel_exporter_otlp_endpoint: OtlpEndpoint = None

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_public_url: str | None = None
    # The API's base URL as workers reach it (runs read it as {execution.api_url}); unset:
    # API_PUBLIC_URL, else http://API_HOST:API_PORT. Compose sets it to the service's name.
    api_internal_url: str | None = None

    # API keys: a JSON list of {"key", "name", "role", "workflows"} (or a file with the same)
    api_keys: SecretStr | None = None
    api_keys_file: Path | None = None
    auth_disabled: bool = False

    # API limits
    api_max_body_bytes: int = Field(1024 * 1024, ge=1024)
    api_max_input_bytes: int = Field(256 * 1024, ge=1024)
    api_rate_limit_per_minute: float = Field(600.0, gt=0)
    api_rate_limit_burst: int = Field(100, ge=1)
    api_max_wait_seconds: float = Field(300.0, gt=0)
    # How long a workflow tool called over /mcp waits for its run before answering "running".
    mcp_wait_seconds: float = Field(60.0, gt=0, le=3600)
    definition_max_steps: int = Field(1000, ge=1)
    # Triggers one definition may hold, and how often a schedule may fire at most (an interval
    # or the tightest gap of a cron): each fire is a run.
    definition_max_triggers: int = Field(10, ge=0, le=1000)
    schedule_min_interval_seconds: float = Field(60.0, ge=1, le=86400)
    # GET /api/executions/{id}?include=variables answers values up to this size in all (413
    # past it: ask for some with ?variable=NAME); without it large values are summarised.
    api_status_max_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024)
    # /readyz and starts count a worker as polling TEMPORAL_TASK_QUEUE when Temporal saw it
    # poll within this many seconds. Temporal reports a poller's last access as the *start*
    # of its current long poll, and an idle worker's long poll lasts up to ~60 s on the server
    # (70 s client-side) before it polls again: a shorter window would call live idle workers
    # dead. 90 s leaves 20 s for clock skew between the API and Temporal; a stopped worker
    # turns /readyz 503 within it (Temporal itself lists a gone poller for 5 minutes).
    api_worker_poll_window_seconds: float = Field(90.0, ge=1, le=3600)

    # Webhook triggers: a JSON object of secret name -> secret (a trigger names its secret)
    webhook_secrets: SecretStr | None = None
    # A signed X-Webhook-Timestamp may be this far from the API's clock (either way). Replays
    # inside the window are refused by delivery id through Temporal's workflow-id policy, which
    # holds for the namespace's retention (at least a day), hence the one-hour ceiling.
    webhook_tolerance_seconds: int = Field(300, ge=1, le=3600)
    # Failed authentication (bad or missing API key, bad webhook signature), per client
    # address: past the burst it answers 429. Valid credentials are never held back by it.
    api_failed_auth_per_minute: float = Field(10.0, gt=0)
    api_failed_auth_burst: int = Field(20, ge=1)

    # Flow control (docs/flow-control.md), shared by every run and worker. AI_RATE_LIMITS:
    # {"<model, or provider prefix ending in *>": {"requests_per_minute": R,
    # "tokens_per_minute": T}}; HTTP_HOST_CONCURRENCY: {"<host or host:port>": N} requests
    # in flight at once.
    ai_rate_limits: AIRateLimits = Field(default_factory=dict)
    http_host_concurrency: HostConcurrency = Field(default_factory=dict)
    # The window AI_RATE_LIMITS' "per minute" counts over (providers: 60 s); turns keep a
    # one-second margin beyond it. Shorter only to try limits out quickly (the tests do).
    rate_limit_window_seconds: float = Field(60.0, ge=1, le=3600)

    @property
    def providers(self) -> dict[str, ProviderConfig]:
        """``AI_PROVIDERS`` parsed (checked when the settings were read)."""
        return parse_providers(self.ai_providers)

    @model_validator(mode="after")
    def _file_storage_directories(self) -> Settings:
        """With file:// storage, the log and payload directories not set on their own follow
        the URL's directory (the default, file://storage, gives the historical paths)."""
        location = parse_storage_url(self.storage_url)
        if isinstance(location, FileLocation):
            if "workflow_log_dir" not in self.model_fields_set:
                self.workflow_log_dir = location.root / LOGS_AREA
            if "payload_store_dir" not in self.model_fields_set:
                self.payload_store_dir = location.root / PAYLOADS_AREA
        return self

    @property
    def database(self) -> str:
        """DATABASE_URL, or the embedded SQLite file beside the logs when it is unset."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return embedded_database_url(self.storage_url)

    @property
    def database_embedded(self) -> bool:
        """The default database: the API creates and migrates it by itself."""
        return self.database_url is None

    @property
    def api_url(self) -> str:
        return self.api_public_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def api_url_for_runs(self) -> str:
        """``{execution.api_url}``: where a run's http steps reach this API."""
        return (self.api_internal_url or self.api_url).rstrip("/")


def load_settings(**overrides: Any) -> Settings:
    """Read settings; raise ConfigurationError naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        lines = []
        for error in err.errors(include_url=False):
            name = "_".join(str(p) for p in error["loc"]).upper()
            lines.append(f"{name}: {error['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
