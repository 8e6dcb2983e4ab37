"""The frozen Settings model: every setting, read once from the environment and `.env`.

Names are the Node service's (``APP_PORT``, ``DB_HOST``, ``JWT_ACCESS_SECRET`` …) so that
an existing `.env` works unchanged; new settings follow the same style. Nothing else in
the package reads ``os.environ``: the CLI builds one ``Settings`` and passes it down.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import os
import secrets
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from authsvc.core.events import EVENT_TYPES
from authsvc.core.ratelimits import Limit

log = logging.getLogger(__name__)

#: HMAC keys shorter than this are refused in production (RFC 7518 §3.2: a key of the
#: same size as the hash output, 256 bits for HS256).
MIN_SECRET_BYTES = 32

#: A secret of fewer distinct bytes (36 x "a", "abab…") is no key, whatever its length.
#: Not 16: a hex secret has only 16 symbols, and a quarter of `openssl rand -hex 32`
#: outputs lack one of them; 8 refuses none of those (nor 1 in 800 of 32 random digits).
MIN_SECRET_DISTINCT_BYTES = 8

#: Secrets shipped in examples and tutorials; a production process refuses them.
EXAMPLE_SECRET_PREFIXES = ("change-me", "changeme", "example", "secret", "your-")


#: A rate limit: COUNT/SECONDS, or off.
_LIMIT = r"^(off|\d+/\d+(\.\d+)?)$"


class ConfigError(Exception):
    """A configuration that cannot run; ``str()`` is one line naming the setting."""


#: A webhook secret's key, as Standard Webhooks says: 24 to 64 random bytes.
WEBHOOK_SECRET_BYTES = (24, 64)
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
#: The outbox's recipient column holds the URL.
MAX_WEBHOOK_URL_CHARS = 254


class WebhookEndpoint(BaseModel):
    """One entry of WEBHOOKS: where events go, the secrets that sign them (the first
    is the newest; every one signs, so a receiver may move to a new one at leisure),
    and the event types it wants (unset: all)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    secrets: tuple[SecretStr, ...]
    events: tuple[str, ...] | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must hold no user or password (the signature authenticates)")
        if parts.fragment:
            raise ValueError("must have no fragment")
        if len(value) > MAX_WEBHOOK_URL_CHARS:
            raise ValueError(f"must be at most {MAX_WEBHOOK_URL_CHARS} characters")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port when it is read
        except ValueError:
            raise ValueError("has a port that is not a number from 1 to 65535") from None
        return value

    @field_validator("secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        """A list, or one string of secrets separated by spaces."""
        return value.split() if isinstance(value, str) else value

    @field_validator("secrets")
    @classmethod
    def _check_secrets(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if not value:
            raise ValueError("needs at least one whsec_… secret")
        for secret in value:
            webhook_key(secret.get_secret_value())  # raises ValueError, never quoting it
        return value

    @field_validator("events")
    @classmethod
    def _check_events(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in value or ():
            if name not in EVENT_TYPES:
                raise ValueError(f"{name!r} is no event type ({', '.join(EVENT_TYPES)})")
        return value

    def wants(self, event_type: str) -> bool:
        return self.events is None or event_type in self.events

    @property
    def loopback(self) -> bool:
        """Whether the URL names this machine (plain http:// is fine there)."""
        host = urlsplit(self.url).hostname or ""
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def endpoint_shown(url: str) -> str:
    """A webhook endpoint as logs, `authsvc outbox list` and `check-config` show it:
    without its query or user info (which might carry a token of the receiver's)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret. Raises ValueError (never quoting
    the secret)."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError(f"each secret must start with {WEBHOOK_SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("each secret must be whsec_ and then base64") from None
    low, high = WEBHOOK_SECRET_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"each secret must hold {low} to {high} bytes of key")
    return key


class Settings(BaseSettings):
    """Every setting of the service, validated once at start. See `.env.example`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # `DB_TYPE=` in a .env means "not set", as it did for the Node service.
        env_ignore_empty=True,
        frozen=True,
        case_sensitive=False,
    )

    # --- process -------------------------------------------------------------------
    node_env: Literal["development", "production", "test"] = "development"
    app_host: str = "127.0.0.1"
    app_port: int = Field(3000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: json or text; unset: JSON lines in production, readable lines in development.
    log_format: Literal["json", "text"] | None = None
    #: Worker processes; unset: one per core in production, one in development.
    workers: int | None = Field(None, ge=1, le=256)
    #: Prometheus metrics at http://METRICS_HOST:METRICS_PORT/metrics; unset: off.
    #: Keep it off the public network (nginx never exposes it).
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    #: asyncio's own loop, or uvloop (faster on the hot paths: make bench); unset:
    #: uvloop where it is installed (it is a dependency except on Windows).
    event_loop: Literal["asyncio", "uvloop"] | None = None
    #: How long in-flight requests get to finish after SIGTERM before they are cut.
    shutdown_timeout_s: float = Field(10.0, ge=0, le=600)

    # --- users database --------------------------------------------------------------
    db_type: Literal["mysql", "mariadb", "sqlite"] | None = None
    db_host: str | None = None
    db_port: int = Field(3306, ge=1, le=65535)
    db_name: str | None = None
    db_username: str | None = None
    db_password: SecretStr = SecretStr("")
    db_pool_min: int = Field(1, ge=0, le=1000)
    db_pool_max: int = Field(10, ge=1, le=1000)
    db_connect_timeout_s: float = Field(2.0, gt=0, le=60)
    #: TLS to MySQL/MariaDB: on with DB_SSL=true or any DB_SSL_* file set.
    db_ssl: bool = False
    db_ssl_ca: str | None = None  # CA bundle that signed the server's certificate
    db_ssl_cert: str | None = None  # client certificate, for servers that require one
    db_ssl_key: str | None = None
    db_ssl_verify_identity: bool = True  # the certificate must name DB_HOST
    sqlite_path: str = ".authsvc/authsvc.sqlite3"

    # --- sessions (Redis) ------------------------------------------------------------
    redis_url: SecretStr | None = None
    redis_host: str | None = None
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_password: SecretStr | None = None
    redis_db: int = Field(0, ge=0)
    redis_key_prefix: str = "authsvc:"
    #: Redis Cluster: REDIS_URL (or host and port) names any node of it.
    redis_cluster: bool = False
    #: Sentinel: the sentinels as comma-separated host:port, and the master they watch;
    #: REDIS_URL then only gives the options (password, database, rediss://).
    redis_sentinels: str = ""
    redis_sentinel_master: str = "mymaster"

    #: Upper bound for one store call, so that an outage answers instead of hanging.
    store_timeout_s: float = Field(2.0, gt=0, le=60)

    # --- tokens ----------------------------------------------------------------------
    #: HS* sign access tokens with JWT_ACCESS_SECRET; EdDSA, ES256 and RS256 with the
    #: private keys of JWT_KEYS_DIR / JWT_PRIVATE_KEY, published at /.well-known/jwks.json.
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "EdDSA", "ES256", "RS256"] = "HS256"
    jwt_keys_dir: str = ".authsvc/keys"
    jwt_private_key: SecretStr | None = None
    jwt_signing_kid: str | None = None
    jwt_access_secret: SecretStr | None = None
    jwt_access_age_s: int = Field(900, ge=1)
    jwt_refresh_secret: SecretStr | None = None
    jwt_refresh_age_s: int = Field(30 * 24 * 3600, ge=1)
    jwt_issuer: str = "authsvc"
    jwt_audience: str = "authsvc"
    jwt_leeway_s: int = Field(0, ge=0, le=30)
    #: A key that `authsvc keys rotate` retired stays published and accepted for
    #: JWT_ACCESS_AGE_S + JWT_LEEWAY_S + this, then drops out by itself: this covers the
    #: workers that sign with it until they see the rotation (about 2 s, hence at least
    #: 3) and clock skew between hosts.
    jwt_key_retire_margin_s: int = Field(60, ge=3, le=3600)

    # --- discovery (RFC 8414, OpenID Connect Discovery) and the JWKS ------------------
    #: GET /.well-known/openid-configuration and /.well-known/oauth-authorization-server;
    #: unset: on in development, and in production when PUBLIC_URL is set (true in
    #: production needs PUBLIC_URL: the documents' URLs are built from it).
    discovery: bool | None = None
    #: Cache-Control max-age of the JWKS and the discovery documents: a verifier may use
    #: a set this old, so publish a key (`authsvc keys generate`) this long before it signs.
    jwks_max_age_s: int = Field(300, ge=0, le=86400)

    # --- sessions ------------------------------------------------------------------------
    #: optional: the Node service's non-rotating `refresh` works beside `renew`;
    #: required: only `renew`, and `refresh` answers an error naming it.
    refresh_rotation: Literal["optional", "required"] = "optional"
    #: How long after a renewal its parent token may be retried (lost response, parallel
    #: tabs) without counting as reuse.
    refresh_reuse_grace_s: float = Field(10.0, ge=0, le=300)
    #: A session unused this long ends (0: only the absolute JWT_REFRESH_AGE_S applies).
    session_idle_timeout_s: int = Field(0, ge=0)

    # --- rate limits and lockout: COUNT/SECONDS (a fixed window), or "off" ----------------
    #: Failed logins per account from one client address (LOCKOUT_* bounds the account
    #: from all addresses together).
    rate_limit_login_failures_per_account: str = Field("10/900", pattern=_LIMIT)
    rate_limit_login_per_ip: str = Field("30/60", pattern=_LIMIT)
    rate_limit_register_per_ip: str = Field("30/300", pattern=_LIMIT)
    rate_limit_refresh_per_session: str = Field("60/60", pattern=_LIMIT)
    rate_limit_password_change_per_account: str = Field("5/3600", pattern=_LIMIT)
    #: Failed logins in a row (reset by a success) after which an account is refused
    #: for the rest of LOCKOUT_WINDOW_S; at most 100 (NIST SP 800-63B §5.2.2).
    lockout_consecutive_failures: int = Field(100, ge=1, le=100)
    lockout_window_s: int = Field(86400, ge=60, le=7 * 86400)

    # --- introspection (RFC 7662) -------------------------------------------------------
    #: POST /introspect exists only when a secret is set; callers authenticate with
    #: HTTP Basic (client id and secret).
    introspection_client_id: str = "introspect"
    introspection_client_secret: SecretStr | None = None

    # --- accounts and passwords --------------------------------------------------------
    bcrypt_rounds: int = Field(12, ge=4, le=31)
    #: Hashing threads per worker; unset: the cores shared out among the workers, so
    #: that all workers together hash on every core and no more.
    hash_threads: int | None = Field(None, ge=1, le=256)
    #: The longest the password hashes ahead of a login or registration may take, at
    #: the pace measured, before it is answered "busy" (status 503) at once
    #: (core/admission.py): so a fast configuration never refuses and a slow one tells
    #: clients to retry long before they time out. 1 s is about what 4 hashes per thread
    #: took at 12 rounds, the count admitted before. A client that asks again too soon
    #: gets half of it.
    hash_queue_max_wait_s: float = Field(1.0, gt=0, le=60)
    #: At most this many logins and registrations admitted at once per worker, beside
    #: the wait bound (too soon: half); unset: 1,024, a bound on memory only.
    hash_queue_max: int | None = Field(None, ge=1, le=10_000)
    #: The hashing threads' nice value (Linux): 19, the lowest priority, keeps refresh
    #: and `me` fast beside a full backlog; 0, the event loops' own, keeps hashing its
    #: share of the CPU whatever keeps the loops busy, at the price of their latency.
    hash_niceness: int = Field(19, ge=0, le=19)
    #: A refusal that passes (busy, rate limited) to a client that asked again too soon
    #: (before its Retry-After, or within a second of its last login) is held until it
    #: may ask, at most this long; 0: never held (graphql/pacing.py).
    refusal_hold_max_s: float = Field(2.0, ge=0, le=30)
    #: Answers held at once per worker at most; past it, the connection is closed.
    refusals_held_max: int = Field(1024, ge=1, le=1_000_000)
    #: Refusals in a row a connection may ask again too soon for before it is closed.
    refusals_ignored_max: int = Field(20, ge=1, le=1_000_000)
    password_min_length: int = Field(8, ge=1, le=72)
    password_reject_common: bool = True
    email_confirmation: bool = False

    # --- mail (delivered from the outbox in the users database) ---------------------------
    #: smtp://user:pass@host:port (STARTTLS whenever the server offers it) or smtps://…
    #: (TLS from the first byte). Unset: development writes each mail to the log;
    #: production sends none (and refuses to start with EMAIL_CONFIRMATION=true).
    smtp_url: SecretStr | None = None
    #: Never send without TLS: a server that offers no STARTTLS gets no mail (and no
    #: password).
    smtp_require_tls: bool = False
    #: CA bundle that signed the SMTP server's certificate; unset: the system's.
    smtp_tls_ca: str | None = None
    #: Bound on each SMTP step (connect, each command).
    smtp_timeout_s: float = Field(10.0, gt=0, le=300)
    email_from: str = "authsvc <no-reply@localhost>"
    #: How the mails name the service (the templates' service_name).
    email_service_name: str = "authsvc"
    #: A folder of templates (<kind>.subject.txt, <kind>.txt, <kind>.html) that replace
    #: the packaged ones file by file.
    email_templates_dir: str | None = None
    #: Tries before a mail is dead; the waits between grow from the base to the max.
    outbox_max_attempts: int = Field(8, ge=1, le=100)
    outbox_backoff_base_s: float = Field(30.0, gt=0, le=86400)
    outbox_backoff_max_s: float = Field(3600.0, gt=0, le=7 * 86400)
    #: How often each worker looks for due mail (an enqueue wakes its own at once).
    outbox_poll_interval_s: float = Field(5.0, gt=0, le=3600)
    #: How long a claimed mail is a worker's: one that dies sending leaves it to
    #: another after this. At least twice SMTP_TIMEOUT_S.
    outbox_lease_s: float = Field(120.0, gt=0, le=86400)
    outbox_batch_size: int = Field(20, ge=1, le=1000)
    #: Sent mails (their bodies already blank) are kept this long, then deleted; 0: for
    #: good.
    outbox_keep_sent_s: int = Field(7 * 86400, ge=0, le=3650 * 86400)

    # --- webhooks (delivered from the same outbox) ------------------------------------------
    #: A JSON list of endpoints: [{"url": "https://…", "secrets": "whsec_…" or a list,
    #: "events": ["user.registered", …] (optional: all)}]. Unset: no webhooks.
    webhooks: Annotated[tuple[WebhookEndpoint, ...], NoDecode] = ()
    #: Production refuses plain http:// to an address other than loopback unless this.
    webhook_allow_http: bool = False
    #: Bound on one delivery (connect, send, the answer).
    webhook_timeout_s: float = Field(10.0, gt=0, le=300)
    #: Endpoints sent to at once per worker.
    webhook_concurrency: int = Field(8, ge=1, le=256)

    # --- account flows by email (core/lifecycle.py) ---------------------------------------
    #: The service's public base URL (https://auth.example.com), under which its pages
    #: (/confirm-email, /reset-password, /confirm-email-change) are reached. Unset: the
    #: listen address (development; production with SMTP_URL requires it).
    public_url: str | None = None
    #: Where the mails' links point instead: the product's own front end, which reads
    #: ?token= and calls the mutations (<base>/confirm-email?token=…, and so on).
    email_link_base_url: str | None = None
    email_confirmation_ttl_s: int = Field(24 * 3600, ge=60, le=30 * 86400)
    password_reset_ttl_s: int = Field(3600, ge=60, le=7 * 86400)
    email_change_ttl_s: int = Field(3600, ge=60, le=7 * 86400)
    #: After a mail to an address, more requests for it within this are answered the
    #: same and send nothing.
    email_resend_cooldown_s: int = Field(60, ge=0, le=86400)
    #: Requests for a mail (confirmation, reset) from one client address, and to one
    #: email address (count/seconds).
    rate_limit_email_per_ip: str = Field("20/3600", pattern=_LIMIT)
    rate_limit_email_per_address: str = Field("5/3600", pattern=_LIMIT)
    #: The requests that must not tell whether an address has an account answer no
    #: sooner than this after they arrive, whatever they found.
    email_request_answer_s: float = Field(0.25, ge=0, le=10)

    # --- HTTP ------------------------------------------------------------------------
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    document_cache_size: int = Field(512, ge=0, le=100_000)
    #: Bounds on waiting for a client, so that a slow or silent one cannot hold a
    #: connection when nothing sits in front: a new connection's first request headers,
    #: a request body once its headers are in, and a kept-alive connection between
    #: requests (longer than nginx's upstream keepalive_timeout, 60 s, so that nginx
    #: closes an idle connection first and never reuses one just being closed).
    http_header_timeout_s: float = Field(10.0, gt=0, le=600)
    http_body_timeout_s: float = Field(30.0, gt=0, le=3600)
    http_idle_timeout_s: float = Field(75.0, gt=0, le=3600)
    http_max_connections_per_address: int = Field(128, ge=0, le=1_000_000)

    #: Addresses or CIDR ranges of the proxies in front (nginx), comma-separated: only
    #: from these are X-Forwarded-For / X-Real-IP believed. Only the proxies' own
    #: addresses: a client inside a trusted range can choose its own address.
    trusted_proxies: str = ""
    #: Per-address rate limits count an IPv6 client by its network of this prefix
    #: length (a /64 is commonly one host or one customer); 128: the full address.
    #: Sessions and logs keep the full address.
    ipv6_rate_limit_prefix: int = Field(64, ge=32, le=128)

    # --- forward-auth: GET /auth for nginx auth_request, Traefik ForwardAuth --------------
    #: A cookie that holds the access token, for browser apps behind the proxy (read
    #: when no Authorization: Bearer header is sent); unset: the header only.
    forward_auth_cookie: str | None = Field(None, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
    #: How long a proxy may cache a 200 of /auth (keyed on the credentials): a revoked
    #: session may pass for this long. 0: Cache-Control: no-store, revocation seen at once.
    forward_auth_cache_s: int = Field(0, ge=0, le=60)

    # --- CORS (pages on other origins calling /graphql) --------------------------------
    #: Origins (scheme://host[:port]) whose pages may call /graphql, comma-separated,
    #: matched exactly; `*` for any page; `off` for none. Unset: none, except
    #: http://localhost:3000 in development (the Node service's default).
    cors_origins: str | None = None
    #: Access-Control-Allow-Credentials: pages may send cookies. authsvc reads the
    #: Authorization header, which needs none of this; never with `*`.
    cors_allow_credentials: bool = False
    #: How long a browser may reuse a preflight's answer; Chromium caps it at 7200.
    cors_max_age_s: int = Field(600, ge=0, le=7200)

    # --- GraphQL limits (checked before any resolver runs) --------------------------------
    graphql_max_depth: int = Field(8, ge=2, le=100)
    graphql_max_aliases: int = Field(10, ge=0, le=10_000)
    graphql_max_root_fields: int = Field(10, ge=1, le=10_000)
    graphql_max_fields: int = Field(100, ge=1, le=10_000)
    graphql_max_tokens: int = Field(1000, ge=50, le=1_000_000)
    graphql_max_variables_bytes: int = Field(8192, ge=256, le=16 * 1024 * 1024)
    #: Introspection and "Did you mean …" suggestions; unset: on outside production.
    graphql_introspection: bool | None = None
    #: GraphiQL at GET /graphql for a browser; unset: on in development, off in production.
    graphiql: bool | None = None
    #: Operations per batched request (a JSON array body); 0 turns batching off.
    graphql_batch_max: int = Field(0, ge=0, le=100)

    @property
    def is_production(self) -> bool:
        return self.node_env == "production"

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return parse_networks(self.trusted_proxies)

    @field_validator(
        "rate_limit_login_failures_per_account",
        "rate_limit_login_per_ip",
        "rate_limit_register_per_ip",
        "rate_limit_refresh_per_session",
        "rate_limit_password_change_per_account",
        "rate_limit_email_per_ip",
        "rate_limit_email_per_address",
    )
    @classmethod
    def _check_limit(cls, value: str) -> str:
        Limit.parse(value)  # raises ValueError: 0/N and N/0 are refused, not "off"
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        parse_networks(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str | None) -> str | None:
        if value is not None:
            parse_origins(value)  # raises ValueError naming the bad entry
        return value

    @model_validator(mode="after")
    def _check_cors(self) -> Settings:
        if self.cors_allow_credentials and self.cors_any_origin:
            # The browser refuses `*` on a credentialed request, and the way around it,
            # echoing every Origin, lets any site act as its visitors.
            raise ValueError("CORS_ORIGINS=* cannot be used with CORS_ALLOW_CREDENTIALS=true")
        return self

    @property
    def cors_allowed_origins(self) -> tuple[str, ...]:
        """The origins CORS answers, normalized; ``("*",)`` for any."""
        if self.cors_origins is None:
            return ("http://localhost:3000",) if self.node_env == "development" else ()
        return parse_origins(self.cors_origins)

    @property
    def cors_any_origin(self) -> bool:
        return self.cors_allowed_origins == ("*",)

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            split_smtp_url(value.get_secret_value())
        return value

    @field_validator("email_from")
    @classmethod
    def _check_email_from(cls, value: str) -> str:
        address = parseaddr(value)[1]
        local, _, domain = address.rpartition("@")
        if not local or not domain:
            raise ValueError("must be an address, as in `Name <no-reply@example.com>`")
        return value

    @field_validator("webhooks", mode="before")
    @classmethod
    def _parse_webhooks(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value) if value.strip() else ()
        except json.JSONDecodeError as exc:
            # Never the input: it holds the secrets.
            raise ValueError(f"is not JSON ({exc.msg} at character {exc.pos})") from None

    @field_validator("webhooks")
    @classmethod
    def _check_webhook_urls(cls, value: tuple[WebhookEndpoint, ...]) -> tuple[WebhookEndpoint, ...]:
        # The outbox names an endpoint by its URL: two with one URL would sign each
        # other's events with the wrong secrets.
        seen: set[str] = set()
        for number, endpoint in enumerate(value):
            if endpoint.url in seen:
                raise ValueError(
                    f"endpoint {number} has the URL of an earlier one "
                    f"({endpoint_shown(endpoint.url)}): give each endpoint its own URL"
                )
            seen.add(endpoint.url)
        return value

    @field_validator("email_templates_dir")
    @classmethod
    def _check_templates_dir(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError("is not a folder")
        return value

    @model_validator(mode="after")
    def _check_outbox(self) -> Settings:
        if self.outbox_lease_s < 2 * self.smtp_timeout_s:
            raise ValueError(
                "OUTBOX_LEASE_S must be at least twice SMTP_TIMEOUT_S (a mail being sent "
                "must not outlive its claim)"
            )
        if self.webhooks and self.outbox_lease_s < 2 * self.webhook_timeout_s:
            raise ValueError(
                "OUTBOX_LEASE_S must be at least twice WEBHOOK_TIMEOUT_S (a webhook being "
                "sent must not outlive its claim)"
            )
        if self.outbox_backoff_max_s < self.outbox_backoff_base_s:
            raise ValueError("OUTBOX_BACKOFF_MAX_S must not be below OUTBOX_BACKOFF_BASE_S")
        return self

    @property
    def db_tls(self) -> bool:
        return self.db_ssl or any((self.db_ssl_ca, self.db_ssl_cert, self.db_ssl_key))

    @property
    def effective_log_format(self) -> Literal["json", "text"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "text"

    @property
    def effective_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        return (os.cpu_count() or 1) if self.is_production else 1

    @property
    def effective_hash_threads(self) -> int:
        if self.hash_threads is not None:
            return self.hash_threads
        return max(1, (os.cpu_count() or 1) // self.effective_workers)

    @property
    def graphiql_enabled(self) -> bool:
        return (not self.is_production) if self.graphiql is None else self.graphiql

    @property
    def introspection_enabled(self) -> bool:
        if self.graphql_introspection is None:
            return not self.is_production
        return self.graphql_introspection

    @property
    def discovery_enabled(self) -> bool:
        if self.discovery is None:
            return not self.is_production or self.public_url is not None
        return self.discovery

    @property
    def key_retention_s(self) -> int:
        """How long a retired key stays live: its longest-lived token, and the margin."""
        return self.jwt_access_age_s + self.jwt_leeway_s + self.jwt_key_retire_margin_s

    @property
    def uses_hmac_access_tokens(self) -> bool:
        return self.jwt_algorithm.startswith("HS")

    @property
    def refresh_algorithm(self) -> str:
        """Refresh tokens only ever come back to authsvc: always a shared secret."""
        return self.jwt_algorithm if self.uses_hmac_access_tokens else "HS256"

    @property
    def users_backend(self) -> Literal["mysql", "sqlite"]:
        """Where users live: MySQL/MariaDB when configured, else the embedded SQLite."""
        if self.db_type in ("mysql", "mariadb"):
            return "mysql"
        if self.db_type is None and self.db_host:
            return "mysql"
        return "sqlite"

    @property
    def sessions_backend(self) -> Literal["redis", "sqlite"]:
        configured = self.redis_url or self.redis_host or self.redis_sentinels
        return "redis" if configured else "sqlite"

    @property
    def redis_sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        addresses = []
        for entry in (e.strip() for e in self.redis_sentinels.split(",")):
            if entry:
                host, _, port = entry.rpartition(":")
                addresses.append((host or entry, int(port) if port.isdigit() else 26379))
        return tuple(addresses)

    @property
    def redis_dsn(self) -> str:
        """The Redis URL, from ``REDIS_URL`` or built from the host settings."""
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        if self.redis_host is None:
            return f"redis://localhost/{self.redis_db}"  # sentinels name the host
        auth = ""
        if self.redis_password is not None:
            auth = ":" + self.redis_password.get_secret_value() + "@"
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if not self.is_production:
            return self
        # Asymmetric access tokens need no access secret; refresh tokens are always HMAC.
        secrets_needed = ["jwt_refresh_secret"]
        if self.uses_hmac_access_tokens:
            secrets_needed.insert(0, "jwt_access_secret")
        if self.introspection_client_secret is not None:
            secrets_needed.append("introspection_client_secret")
        for name in secrets_needed:
            problem = secret_problem(getattr(self, name))
            if problem:
                raise ValueError(f"{name.upper()} {problem}")
        if self.uses_hmac_access_tokens and self.jwt_access_secret == self.jwt_refresh_secret:
            raise ValueError("JWT_REFRESH_SECRET must differ from JWT_ACCESS_SECRET")
        if self.introspection_client_secret is not None and self.introspection_client_secret in (
            self.jwt_access_secret,
            self.jwt_refresh_secret,
        ):
            # Whoever may introspect would hold a signing key too.
            raise ValueError("INTROSPECTION_CLIENT_SECRET must differ from the JWT secrets")
        if self.users_backend != "mysql":
            raise ValueError(
                "DB_TYPE must be mysql or mariadb in production (the embedded SQLite "
                "store is for development)"
            )
        for name in ("db_host", "db_name", "db_username"):
            if not getattr(self, name):
                raise ValueError(f"{name.upper()} is required in production")
        if self.sessions_backend != "redis":
            raise ValueError("REDIS_HOST or REDIS_URL is required in production")
        if self.email_confirmation and self.smtp_url is None:
            raise ValueError(
                "SMTP_URL is required in production when EMAIL_CONFIRMATION=true (no "
                "confirmation mail could be sent, so no new account could log in)"
            )
        for number, endpoint in enumerate(self.webhooks):
            insecure = urlsplit(endpoint.url).scheme == "http" and not endpoint.loopback
            if insecure and not self.webhook_allow_http:
                raise ValueError(
                    f"WEBHOOKS.{number}.URL: plain http:// to another host is refused in "
                    "production (events would travel unencrypted); use https://, or set "
                    "WEBHOOK_ALLOW_HTTP=true"
                )
        if self.smtp_url is not None and not (self.public_url or self.email_link_base_url):
            raise ValueError(
                "PUBLIC_URL (or EMAIL_LINK_BASE_URL) is required in production with "
                "SMTP_URL: the mails' links must point at the service's public address"
            )
        if self.discovery and not self.public_url:
            raise ValueError(
                "PUBLIC_URL is required in production with DISCOVERY=true: the discovery "
                "document's URLs must be the service's public address"
            )
        return self

    @field_validator("public_url", "email_link_base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        return value.rstrip("/")

    @property
    def link_base_url(self) -> str:
        """What the mails' links start with."""
        return self.email_link_base_url or self.base_url

    @property
    def base_url(self) -> str:
        """The service's own public base URL: PUBLIC_URL, else the listen address."""
        if self.public_url:
            return self.public_url
        host = f"[{self.app_host}]" if ":" in self.app_host else self.app_host
        return f"http://{host}:{self.app_port}"

    def masked(self) -> dict[str, Any]:
        """The effective settings by their environment names, secrets masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "**********" if value.get_secret_value() else ""
            elif name == "webhooks":  # the URLs as the logs show them (no query)
                value = [
                    endpoint.model_dump(mode="json") | {"url": endpoint_shown(endpoint.url)}
                    for endpoint in value
                ]
            out[name.upper()] = value
        return out


def parse_networks(entries: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated addresses or CIDR ranges. Raises ValueError naming a bad one."""
    networks = []
    for entry in (e.strip() for e in entries.split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR range") from None
    return networks


#: The port an origin has when it names none (RFC 6454 §4): written, it is dropped.
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origins(entries: str) -> tuple[str, ...]:
    """CORS_ORIGINS: comma-separated origins, each normalized as a browser sends it in
    ``Origin`` (lower-case scheme and host, no default port, no path), ``*`` alone, or
    ``off``. Raises ValueError naming a bad entry.

    Patterns (``https://*.example.com``) are refused, not matched: suffix and pattern
    matching is how allowlists are classically bypassed (``https://example.com.evil.net``,
    ``https://evilexample.com``, a forgotten subdomain taken over). ``null`` is refused:
    it is the origin of sandboxed frames, ``file:`` pages and redirects, any page can
    make it, so it allows nobody in particular."""
    listed = [e.strip() for e in entries.split(",") if e.strip()]
    if listed in ([], ["off"]):
        return ()
    if "*" in listed:
        if len(listed) > 1:
            raise ValueError("`*` must stand alone (it allows every origin)")
        return ("*",)
    return tuple(dict.fromkeys(normalize_origin(entry) for entry in listed))


def normalize_origin(entry: str) -> str:
    """One origin as a browser writes ``Origin``. Raises ValueError for anything that
    is no single http(s) origin (``null``, a pattern, a path, a list)."""
    if entry.lower() == "null":
        raise ValueError("`null` cannot be allowed: any page can send it")
    if "*" in entry:
        raise ValueError(f"{entry!r}: list each origin, patterns are not matched")
    if not entry.isascii():
        raise ValueError(f"{entry!r}: write the host in its ASCII (xn--) form")
    parts = urlsplit(entry)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{entry!r} is not an origin such as https://app.example.com")
    if parts.username is not None or parts.path not in ("", "/") or "?" in entry or "#" in entry:
        raise ValueError(f"{entry!r}: an origin is scheme://host[:port], nothing more")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{entry!r} has a port that is not a number from 1 to 65535") from None
    host = parts.hostname  # lower-cased by urlsplit, brackets of IPv6 removed
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def split_smtp_url(url: str) -> SplitResult:
    """SMTP_URL's parts. Raises ValueError for one that cannot be used; the message
    never quotes the URL (it holds a password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("names no host")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port when it is read
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    return parts


def secret_problem(secret: SecretStr | None) -> str | None:
    """Why ``secret`` is unfit to sign production tokens, or None if it is fit."""
    if secret is None or not secret.get_secret_value():
        return "is missing"
    value = secret.get_secret_value()
    if value.lower().startswith(EXAMPLE_SECRET_PREFIXES):
        return "is still an example value"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    if len(set(value.encode())) < MIN_SECRET_DISTINCT_BYTES:
        return f"has fewer than {MIN_SECRET_DISTINCT_BYTES} distinct bytes (not random)"
    if _repeats(value):
        return "repeats a shorter string (not random)"
    return None


def _repeats(value: str) -> bool:
    """Whether ``value`` is a shorter string said again and again ("abcdefgh" x 4,
    "0123456789abcdef" x 2): enough distinct bytes, no more key than one copy. A random
    secret of 32 bytes or more is periodic with a chance far below 2^-100."""
    return any(value[period:] == value[:-period] for period in range(1, len(value) // 2 + 1))


def load_settings(env_file: str | None = ".env", **overrides: Any) -> Settings:
    """Read and validate the settings; fill development secrets.

    Raises ConfigError with one line that names the offending setting.
    """
    try:
        settings = Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    if not settings.is_production:
        settings = _fill_development_secrets(settings)
    return settings


def describe_validation_error(exc: ValidationError) -> str:
    """One line for the first problem, named by its environment variable."""
    err = exc.errors()[0]
    name = ".".join(str(p) for p in err["loc"]).upper()
    message = err["msg"].removeprefix("Value error, ")
    if not name:  # a model-level check: its message names the setting itself
        return message
    if (
        "input" in err
        and not isinstance(err["input"], dict)
        and "SECRET" not in name
        and not name.startswith("WEBHOOKS")  # its entries hold secrets
        and not _holds_secret(name)
    ):
        return f"{name}: {message} (got {err['input']!r})"
    return f"{name}: {message}"


def _holds_secret(name: str) -> bool:
    """Whether the setting ``name`` is a SecretStr (a URL with a password, say): its
    input is never quoted back."""
    field = Settings.model_fields.get(name.lower())
    return field is not None and "SecretStr" in str(field.annotation)


def _fill_development_secrets(settings: Settings) -> Settings:
    """Generate missing secrets into a local file, so development needs no setup."""
    missing = [
        name
        for name in ("jwt_access_secret", "jwt_refresh_secret")
        if getattr(settings, name) is None
    ]
    if not missing:
        return settings
    path = Path(settings.sqlite_path).parent / "dev-secrets.json"
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    changed = False
    for name in missing:
        if name not in stored:
            stored[name] = secrets.token_urlsafe(48)
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the SQLite file's
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh)
    log.warning(
        "%s not set: using development secrets kept in %s (never do this in production)",
        ", ".join(n.upper() for n in missing),
        path,
    )
    return settings.model_copy(update={n: SecretStr(stored[n]) for n in missing})
