"""Tollgate's configuration, read from environment variables (prefix ``TOLLGATE_``) and ``.env``.

Defaults describe the embedded stack that ``make run`` starts; production points each service
elsewhere (see the README's settings table). Workflows never import this module.
"""

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.chain_address import checksum_address
from domain.errors import ValidationError
from domain.fraud import FraudRules
from domain.rails import RoutingRules
from domain.subscriptions import DEFAULT_RETRY_DAYS, DunningOutcome, check_retry_days
from domain.webhooks import DEFAULT_RETRY_SCHEDULE as DEFAULT_WEBHOOK_RETRY_SCHEDULE
from domain.webhooks import check_retry_schedule

if TYPE_CHECKING:
    from integrations.payload_codec import EncryptionCodec, PayloadKeys

# Anvil's first well-known development account: funded on every fresh anvil chain.
ANVIL_DEV_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path(".data"), description="Where the embedded stack keeps its state")

    # PostgreSQL
    database_url: str | None = Field(
        None, description="SQLAlchemy URL (postgresql+psycopg://...); default: the embedded server"
    )
    pg_port: int = Field(5433, description="Port of the embedded PostgreSQL (make run)")

    # Temporal
    temporal_address: str = Field("127.0.0.1:7233", description="Temporal frontend host:port")
    temporal_namespace: str = "default"
    temporal_tls: bool = Field(False, description="Use TLS to reach Temporal (Temporal Cloud)")
    temporal_api_key: str | None = Field(None, description="Temporal Cloud API key")
    temporal_ui_port: int = Field(8233, description="Port of the embedded Temporal Web UI")
    task_queue: str = Field("tollgate", description="Task queue of workflows and DB activities")

    # Private payloads: Temporal payloads encrypted with AES-GCM (integrations/payload_codec.py)
    payload_keys: dict[str, SecretStr] | None = Field(
        None,
        description='Payload keys by id, as JSON: {"k2": "<base64, 32 bytes>", "k1": "..."}; '
        "default: the keys file",
    )
    payload_key_id: str | None = Field(
        None, description="Id of the key new payloads are encrypted with (several keys: needed)"
    )
    payload_keys_file: Path | None = Field(
        None,
        description='JSON {"current": id, "keys": {id: base64}}; default: '
        "<data_dir>/payload-keys.json, which `tollgate dev` creates",
    )
    payload_encryption_required: bool = Field(
        False, description="Refuse to start without payload keys (set it in production)"
    )
    codec_cors_origins: list[str] | None = Field(
        None,
        description="Origins of the Temporal Web UIs that may call the codec endpoint; "
        "default: the embedded Temporal UI",
    )

    # Chain
    chain_rpc_url: str = Field(
        "http://127.0.0.1:8545", description="JSON-RPC URL of the chain (production: Polygon)"
    )
    chain_id: int = Field(31337, description="Chain id the sender insists on (Polygon: 137)")
    chain_private_key: SecretStr | None = Field(
        None, description="Hex key of the sender; default: anvil's first dev account"
    )
    chain_key_file: Path | None = Field(None, description="File holding the sender's hex key")
    chain_deployments_file: Path | None = Field(
        None, description="JSON of deployed contract addresses; default: <data_dir>/chain.json"
    )
    chain_anchor_address: str | None = Field(
        None, description="Address of the Anchor contract; default: from the deployments file"
    )
    chain_token_address: str | None = Field(
        None,
        description="ERC-20 token of the chain rail (Polygon: USDC); default: anvil's TestUSD",
    )
    chain_token_decimals: int = Field(
        6, ge=0, le=36, description="Decimals of that token (USDC and TestUSD: 6)"
    )
    chain_confirmations: int = Field(
        1, ge=1, description="Blocks (the mined one included) before a batch is CONFIRMED"
    )
    chain_gas_cap: int = Field(
        300_000, gt=0, description="Largest gas limit the sender will sign for one transaction"
    )
    chain_max_fee_per_gas: int = Field(
        500 * 10**9, gt=0, description="Cap on the EIP-1559 max fee per gas, in wei"
    )
    chain_priority_fee: int | None = Field(
        None, ge=0, description="Priority fee per gas in wei; default: the node's suggestion"
    )
    chain_resend_after_seconds: int = Field(
        180, gt=0, description="A transaction pending this long is re-sent with 12.5% more fee"
    )
    chain_poll_seconds: int = Field(
        5, gt=0, description="How often a run checks its transaction's confirmations"
    )
    chain_task_queue: str = Field(
        "tollgate-chain", description="Task queue of chain activities, one at a time"
    )
    anvil_port: int = Field(8545, description="Port of the embedded anvil node")

    # Anchoring
    anchor_interval_minutes: int = Field(
        15, gt=0, description="How often the anchoring Schedule runs"
    )
    anchor_confirm_interval_minutes: int = Field(
        5, gt=0, description="How often the safety net checks batches left SUBMITTED"
    )
    anchor_batch_size: int = Field(
        1000,
        gt=0,
        description="Most tickets in one batch; this many pending starts a run early",
    )

    # Stripe
    stripe_api_key: str = Field("sk_test_tollgate_sandbox", description="Stripe secret key")
    stripe_api_base: str | None = Field(
        "http://127.0.0.1:12111", description="Stripe API base; empty for the real Stripe"
    )
    stripe_webhook_secret: str = Field(
        "whsec_tollgate_sandbox", description="Secret that signs Stripe webhooks"
    )
    stripe_sandbox_port: int = Field(12111, description="Port of the embedded Stripe sandbox")
    stripe_task_queue: str = Field(
        "tollgate-stripe", description="Task queue of Stripe activities, rate-limited"
    )
    stripe_requests_per_second: float = Field(
        25.0, gt=0, description="Most Stripe activities started per second, across workers"
    )
    stripe_timeout_seconds: float = Field(
        # At most 40: the SDK's three tries must fit in the Stripe activities' 2 minutes.
        30.0,
        gt=0,
        le=40,
        description="Longest wait for one answer of Stripe (then retried)",
    )

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    jwt_secret: str = Field(
        "dev-only-secret-change-me-in-production-0123456789", description="HS256 signing key"
    )
    jwt_issuer: str = "tollgate"
    jwt_ttl_seconds: int = Field(3600, description="Lifetime of tokens minted by `tollgate token`")
    idempotency_ttl_hours: int = Field(24, description="How long Idempotency-Keys are kept")
    idempotency_lock_seconds: int = Field(
        60, description="After this, a key whose request died unfinished may be retried"
    )
    # Per-client rate limits (api/rate_limit.py), per API replica; 0 turns one off.
    rate_limit_ticket_issue_per_minute: int = Field(
        6000, ge=0, description="Tickets one client may issue per minute (POST /tickets)"
    )
    rate_limit_ticket_verify_per_minute: int = Field(
        600,
        ge=0,
        description="Verifications one client may ask per minute (POST /tickets/verify, /scans)",
    )
    # Admin console (/admin)
    admin_secure_cookies: bool = Field(
        False,
        description="Mark the console's cookies Secure (always when it is reached over https); "
        "set it behind a proxy that ends TLS",
    )

    # Tickets
    ticket_keys_file: Path | None = Field(
        None,
        description="JSON keyring of ticket signing keys; default: <data_dir>/ticket-keys.json",
    )
    ticket_retention_days: int = Field(
        30, description="Tickets whose window closed longer ago are removed by the daily cleanup"
    )

    # Worker
    worker_metrics_port: int = Field(9464, description="Prometheus port of the worker (0: off)")
    worker_sync_schedules: bool = Field(
        True,
        description="Sync the Temporal Schedules at start (off for workers on other queues)",
    )
    worker_max_cached_workflows: int = Field(
        10_000,
        ge=0,
        description="Workflows a worker keeps in memory; past it each task replays history",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1",
        description="Interface of the worker's Prometheus endpoint (0.0.0.0 to be scraped "
        "from another host or container)",
    )

    # Observability: logs, business metrics, tracing
    log_level: str = Field(
        "INFO", pattern="(?i)^(debug|info|warning|error|critical)$", description="Log level"
    )
    log_format: str = Field(
        "json", pattern="^(json|text)$", description="json: one JSON object per line; text"
    )
    business_metrics_max_age_seconds: float = Field(
        15.0,
        ge=0,
        le=3600,
        description="/metrics reads the business figures from the database at most this often",
    )
    otel_enabled: bool = Field(False, description="Trace with OpenTelemetry")
    otel_exporter: str = Field(
        "otlp",
        pattern="^(otlp|console)$",
        description="otlp: OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT; console: stdout",
    )

    # Payments and refunds
    payment_authorization_hours: int = Field(
        168, ge=1, description="An authorization not captured within this is voided"
    )
    payment_capture_delay_seconds: int | None = Field(
        None, ge=0, description="Capture automatically this long after authorizing (None: by API)"
    )
    payment_review_timeout_hours: int = Field(
        72, ge=1, description="A MEDIUM-risk payment not reviewed within this fails"
    )
    payment_commission_bps: int = Field(
        1000, ge=0, le=10_000, description="Default commission on a vendor's allocation"
    )
    refund_approval_threshold: int | None = Field(
        50_000, ge=0, description="Refunds above this (minor units) wait for an admin (None: never)"
    )
    fraud_rules: FraudRules = Field(
        default_factory=FraudRules, description="Fraud rules and thresholds, as JSON"
    )

    # Vendor settlements
    vendor_settlement_hold_days: int = Field(
        7, ge=0, le=365, description="Days a vendor settlement waits after its period ends"
    )

    # Transfers and batch payouts
    rail_routing: RoutingRules = Field(
        default_factory=RoutingRules,
        description='Rail router overrides, as JSON: {"default": {"USD": "stripe"}, '
        '"partners": {"partner-a": {"USD": "chain"}}, "enabled": ["stripe", "chain"]}',
    )
    transfer_concurrency: int = Field(
        20, ge=1, le=200, description="Items of one transfer batch under way at once"
    )
    transfer_max_attempts: int = Field(
        8, ge=1, le=20, description="Attempts of one transfer at its rail before it fails"
    )
    transfer_backoff_seconds: int = Field(
        2, ge=1, le=3600, description="Wait before a transfer's second attempt; doubles"
    )
    transfer_max_backoff_seconds: int = Field(
        300, ge=1, le=86_400, description="Longest wait between two attempts of a transfer"
    )

    # Liquidity
    liquidity_runway_alert_days: float = Field(
        2.0,
        gt=0,
        le=365,
        description="A rail's runway under this many days records liquidity.runway_low",
    )
    liquidity_window_days: int = Field(
        7, ge=1, le=90, description="Days of recent volume the liquidity runway is measured at"
    )

    # Reconciliation
    reconciliation_margin_minutes: int = Field(
        60,
        ge=0,
        le=24 * 60,
        description="A run reads records this long either side of its period, so a transfer "
        "recorded just across an edge (Stripe at 23:59, the ledger at 00:01) still matches",
    )
    reconciliation_cron: str = Field(
        "30 2 * * *", description="When (UTC cron) the daily run reconciles the previous day"
    )

    # Subscriptions and dunning
    subscription_retry_days: list[int] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_DAYS),
        description="Retries of a failed subscription charge, in days after the first failure",
    )
    subscription_dunning_outcome: DunningOutcome = Field(
        DunningOutcome.UNPAID,
        description="A subscription whose last retry failed becomes unpaid or canceled",
    )

    @field_validator("subscription_retry_days")
    @classmethod
    def _retry_days(cls, days: list[int]) -> list[int]:
        try:
            return list(check_retry_days(days))
        except ValidationError as exc:
            raise ValueError(exc.message) from exc

    # Stripe events (inbound webhooks)
    stripe_event_max_attempts: int = Field(
        8, ge=1, description="Delivery attempts of a Stripe event before it is a dead letter"
    )
    stripe_event_retry_initial_seconds: int = Field(
        5, ge=1, description="Wait before the second delivery attempt; doubles after each"
    )
    stripe_event_retry_max_seconds: int = Field(
        600, ge=1, description="Longest wait between two delivery attempts"
    )

    # Prediction markets
    market_dispute_window_hours: int = Field(
        72, ge=0, description="A completed distribution can be disputed this long, then settles"
    )

    # Outbound webhooks
    webhook_retry_schedule_seconds: list[int] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_RETRY_SCHEDULE),
        description="Waits before each retry of a webhook delivery (an endpoint may set its own)",
    )
    webhook_disable_after_days: int = Field(
        5, ge=1, description="An endpoint whose deliveries fail this long is disabled"
    )
    webhook_log_retention_days: int = Field(
        90, ge=1, description="Webhook deliveries and attempts are kept this long"
    )
    webhook_timeout_seconds: int = Field(
        10, ge=1, le=60, description="Longest wait for a receiver's answer to one attempt"
    )
    webhook_dispatch_interval_seconds: float = Field(
        2.0, gt=0, le=60, description="How often outbox events are dispatched to endpoints"
    )
    webhook_max_retry_after_seconds: int = Field(
        86_400, ge=1, description="Longest Retry-After a receiver can ask for"
    )

    @field_validator("webhook_retry_schedule_seconds")
    @classmethod
    def _webhook_retry_schedule(cls, seconds: list[int]) -> list[int]:
        try:
            return check_retry_schedule(seconds)
        except ValidationError as exc:
            raise ValueError(exc.message) from exc

    @field_validator("chain_token_address")
    @classmethod
    def _token_address(cls, address: str | None) -> str | None:
        if not address:
            return None  # unset, or empty as docker-compose passes it
        try:
            return checksum_address(address, param="TOLLGATE_CHAIN_TOKEN_ADDRESS")
        except ValidationError as exc:
            raise ValueError(exc.message) from exc

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or (
            f"postgresql+psycopg://postgres@127.0.0.1:{self.pg_port}/tollgate"
        )

    @property
    def deployments_file(self) -> Path:
        return self.chain_deployments_file or self.data_dir / "chain.json"

    @property
    def ticket_keys_path(self) -> Path:
        return self.ticket_keys_file or self.data_dir / "ticket-keys.json"

    @property
    def payload_keys_path(self) -> Path:
        return self.payload_keys_file or self.data_dir / "payload-keys.json"

    def payload_keyring(self) -> "PayloadKeys | None":
        """The payload keys: ``TOLLGATE_PAYLOAD_KEYS``, else the keys file if there is one;
        None (payloads in clear) when neither is, unless encryption is required."""
        from integrations.payload_codec import PayloadKeyError, PayloadKeys

        if self.payload_keys:
            texts = {key_id: key.get_secret_value() for key_id, key in self.payload_keys.items()}
            return PayloadKeys.parse(texts, self.payload_key_id)
        path = self.payload_keys_path
        if self.payload_keys_file is not None or path.exists():
            loaded = PayloadKeys.load(path)
            # The setting overrides the file's choice (the first step of a rotation).
            return PayloadKeys(self.payload_key_id, loaded.keys) if self.payload_key_id else loaded
        if self.payload_encryption_required:
            raise PayloadKeyError(
                "payload encryption is required (TOLLGATE_PAYLOAD_ENCRYPTION_REQUIRED) but no "
                "key is configured: set TOLLGATE_PAYLOAD_KEYS or TOLLGATE_PAYLOAD_KEYS_FILE"
            )
        return None

    def payload_codec(self) -> "EncryptionCodec | None":
        """The codec of every Temporal client and worker; None when encryption is off."""
        from integrations.payload_codec import EncryptionCodec

        keys = self.payload_keyring()
        return EncryptionCodec(keys) if keys else None

    @property
    def codec_origins(self) -> list[str]:
        """Browser origins allowed to call ``/codec/*`` (the Temporal Web UI's)."""
        if self.codec_cors_origins is not None:
            return self.codec_cors_origins
        origins = [self.temporal_ui_url]
        host = self.temporal_address.rsplit(":", 1)[0]
        if host in ("127.0.0.1", "localhost"):  # the UI answers under either name
            other = "localhost" if host == "127.0.0.1" else "127.0.0.1"
            origins.append(f"http://{other}:{self.temporal_ui_port}")
        return origins

    @property
    def temporal_ui_url(self) -> str:
        host = self.temporal_address.rsplit(":", 1)[0]
        return f"http://{host}:{self.temporal_ui_port}"

    def anchor_address(self) -> str:
        """The Anchor contract: the setting, else what ``tollgate deploy-contracts`` saved."""
        if self.chain_anchor_address:
            return self.chain_anchor_address
        try:
            saved = json.loads(self.deployments_file.read_text())
            return str(saved["contracts"]["Anchor"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(
                f"no Anchor contract address: {self.deployments_file} is missing or unreadable; "
                "run `tollgate deploy-contracts` or set TOLLGATE_CHAIN_ANCHOR_ADDRESS"
            ) from exc

    def token_address(self) -> str:
        """The chain rail's ERC-20 token: the setting (production: USDC), else the TestUSD
        that ``tollgate deploy-contracts`` deployed on the development chain."""
        if self.chain_token_address:
            return self.chain_token_address
        try:
            saved = json.loads(self.deployments_file.read_text())
            return str(saved["contracts"]["TestUSD"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(
                f"no chain token address: {self.deployments_file} holds no TestUSD (it is "
                "deployed on anvil only); set TOLLGATE_CHAIN_TOKEN_ADDRESS (e.g. USDC)"
            ) from exc

    def chain_sender_key(self) -> str:
        if self.chain_private_key:
            return self.chain_private_key.get_secret_value()
        if self.chain_key_file:
            return self.chain_key_file.read_text().strip()
        return ANVIL_DEV_PRIVATE_KEY

    def chain_sender_address(self) -> str:
        """The sender's address (the chain rail's float), derived from its key."""
        from eth_account import Account

        return str(Account.from_key(self.chain_sender_key()).address)

    def secrets_to_mask(self) -> list[str]:
        """Secret values the logs must never show (see ``observability.logs``)."""
        values = [
            self.stripe_api_key,
            self.stripe_webhook_secret,
            self.jwt_secret,
            self.temporal_api_key or "",
        ]
        try:
            values.append(self.chain_sender_key())
        except OSError:
            pass  # the key file is not readable here: the sender will say so
        return [value for value in values if value]


def reconciliation_sources(settings: Settings) -> list[str]:
    """What reconciliation runs check: Stripe always (transfers and payouts), the chain when
    its rail is enabled."""
    return ["stripe", *(["chain"] if "chain" in settings.rail_routing.enabled else [])]


@lru_cache
def get_settings() -> Settings:
    return Settings()
