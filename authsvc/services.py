"""The composition root: open the stores that the settings name and wire the core.

The only place that knows which adapter backs which protocol.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from authsvc.core.accounts import AccountService
from authsvc.core.clock import Clock, utc_now
from authsvc.core.events import NO_EVENTS, Changes, EventSink
from authsvc.core.lifecycle import AccountLifecycle, LifecyclePolicy
from authsvc.core.passwords import PasswordHasher
from authsvc.core.ratelimits import Limit, RateLimiter, RateLimitPolicy
from authsvc.core.sessions import SessionPolicy, SessionService
from authsvc.core.tokens import TokenCodec, TokenType
from authsvc.core.validation import PasswordPolicy, normalize_email
from authsvc.key_reload import KeyReload
from authsvc.mail.mailer import Mailer
from authsvc.metrics import metrics
from authsvc.settings import ConfigError, Settings
from authsvc.signing import access_ring, refresh_ring
from authsvc.stores import mysql
from authsvc.stores.account_tokens import SQLAccountTokens
from authsvc.stores.base import CounterStore, SessionStore, StoreUnavailable, UserStore
from authsvc.stores.migrations import Applied, MigrationsPending, latest_version
from authsvc.stores.outbox import OutboxDatabase, OutboxStore, TransactionalDatabase
from authsvc.stores.redis import RedisConfig, RedisCounterStore, RedisSessionStore
from authsvc.stores.redis import open_client as open_redis
from authsvc.stores.sql import SQLUserStore

if TYPE_CHECKING:  # imported where used: aiosqlite stays unloaded on MySQL + Redis
    from authsvc.core.outbox import RetryPolicy
    from authsvc.delivery.loop import DeliveryLoop, DeliverySettings
    from authsvc.stores import sqlite

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]
#: (connections open, of which idle) of the database pool; None without one.
PoolUsage = Callable[[], tuple[int, int] | None]


@dataclass
class Services:
    tokens: TokenCodec
    accounts: AccountService
    sessions: SessionService
    lifecycle: AccountLifecycle
    #: The users database's transactions (stores/outbox.py TransactionalDatabase: a
    #: flow's token row and its mail in one), the outbox in it and the mailer that
    #: records mail there.
    users_db: TransactionalDatabase
    outbox: OutboxStore
    mailer: Mailer
    closers: list[Closer] = field(default_factory=list)
    #: What readiness depends on, by name ("database", "redis"): each raises
    #: StoreUnavailable unless its server answers.
    probes: dict[str, Closer] = field(default_factory=dict)

    #: What the metrics read now and then: the hashing backlog and the database pool.
    hashing_backlog: Callable[[], int] = lambda: 0
    pool_usage: PoolUsage = lambda: None

    #: This process's delivery loop of mail (started by `serve` only; None in
    #: production without SMTP_URL): see open_mail.
    delivery: DeliveryLoop | None = None
    #: Follows JWT_KEYS_DIR (started by `serve` only; None with HMAC access tokens).
    key_reload: KeyReload | None = None
    #: Where the webhooks' events are recorded (NO_EVENTS without WEBHOOKS), and the
    #: delivery loop of the "webhook" channel (None without WEBHOOKS): open_webhooks.
    events: EventSink = NO_EVENTS
    webhook_delivery: DeliveryLoop | None = None

    def start_key_reload(self) -> None:
        if self.key_reload is not None:
            self.key_reload.start()

    async def stop_key_reload(self) -> None:
        if self.key_reload is not None:
            await self.key_reload.stop()

    def start_delivery(self) -> None:
        """Start this process's delivery loops (a serving worker, once it listens)."""
        for loop in (self.delivery, self.webhook_delivery):
            if loop is not None:
                loop.start()

    async def stop_delivery(self, grace_s: float = 10.0) -> None:
        """Stop the loops together: each gets the same ``grace_s``, not one after
        the other's."""
        loops = [loop for loop in (self.delivery, self.webhook_delivery) if loop is not None]
        await asyncio.gather(*(loop.stop(grace_s) for loop in loops))

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state: "ok", or why it is not."""
        states = {}
        for name, probe in self.probes.items():
            try:
                await probe()
            except StoreUnavailable as exc:
                states[name] = f"unavailable: {exc}"
            else:
                states[name] = "ok"
        return states

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


def mysql_config(settings: Settings) -> mysql.MySQLConfig:
    return mysql.MySQLConfig(
        host=settings.db_host or "127.0.0.1",
        port=settings.db_port,
        user=settings.db_username or "root",
        password=settings.db_password.get_secret_value(),
        database=settings.db_name or "authsvc",
        pool_min=min(settings.db_pool_min, settings.db_pool_max),
        pool_max=settings.db_pool_max,
        connect_timeout_s=settings.db_connect_timeout_s,
        timeout_s=settings.store_timeout_s,
        tls=mysql_tls(settings) if settings.db_tls else None,
    )


def mysql_tls(settings: Settings) -> ssl.SSLContext:
    """The TLS context of the database connections. Raises ConfigError for a file that
    cannot be read."""
    try:
        context = ssl.create_default_context(cafile=settings.db_ssl_ca)
        if settings.db_ssl_cert:
            context.load_cert_chain(settings.db_ssl_cert, settings.db_ssl_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"DB_SSL_*: cannot load the TLS files: {exc}") from None
    context.check_hostname = settings.db_ssl_verify_identity
    return context


async def migrate(settings: Settings) -> list[Applied]:
    """Bring the users database (and the embedded file) to the newest schema."""
    if settings.users_backend == "mysql":
        pool = await mysql.MySQLPool.open(mysql_config(settings))
        try:
            return await mysql.migrate(pool, email_rule=normalize_email)
        finally:
            await pool.close()
    from authsvc.stores import sqlite

    db = await sqlite.SQLiteDatabase.open(settings.sqlite_path, settings.store_timeout_s)
    try:
        return await sqlite.migrate(db, email_rule=normalize_email)
    finally:
        await db.close()


async def open_services(
    settings: Settings, *, clock: Clock = utc_now, during_outage: bool = False
) -> Services:
    """Open every store and build the services. Development migrates by itself;
    production raises MigrationsPending when ``authsvc migrate`` has not been run.
    Raises StoreUnavailable when a configured server cannot be reached, unless
    ``during_outage`` (serving: an outage is ridden out, at start too): then the
    services are built anyway, answer SERVICE_UNAVAILABLE (and readiness 503) for what
    needs the missing server, and connect when it returns; the database's schema is
    checked (or migrated, in development) then, before anything else reaches it."""
    closers: list[Closer] = []
    probes: dict[str, Closer] = {}
    databases: dict[str, OutboxDatabase] = {}
    try:
        users, sessions, counters, pool_usage = await _open_stores(
            settings, closers, probes, during_outage, databases=databases
        )
        mail = open_mail(settings, databases["users"], clock)
        hooks = open_webhooks(settings, mail.outbox, databases["users"], clock)
    except BaseException:
        for close in reversed(closers):
            await close()
        raise
    closers.append(mail.stop)  # last opened, first closed: before the pool it uses
    closers.append(hooks.stop)
    hasher = PasswordHasher(
        settings.bcrypt_rounds,
        settings.effective_hash_threads,
        max_pending=settings.hash_queue_max,
        niceness=settings.hash_niceness,
        max_wait_s=settings.hash_queue_max_wait_s,
    )

    async def close_hasher() -> None:
        hasher.close()

    closers.insert(0, close_hasher)
    limiter = RateLimiter(counters, clock, rate_limit_policy(settings))
    password_policy = PasswordPolicy(
        min_length=settings.password_min_length,
        reject_common=settings.password_reject_common,
    )
    lifecycle = account_lifecycle(
        settings, databases["users"], users, sessions, mail.mailer, hasher, limiter, clock,
        password_policy, hooks.events,
    )  # fmt: skip
    assert isinstance(users, SQLUserStore)  # both user stores are SQL tables
    accounts = AccountService(
        users,
        sessions,
        hasher,
        clock,
        limiter,
        policy=password_policy,
        email_confirmation=settings.email_confirmation,
        create_unconfirmed=lifecycle.create_unconfirmed,
        forget_links=lifecycle.forget_links,
        changes=Changes(databases["users"], users, hooks.events) if hooks.enabled else None,
    )
    tokens = TokenCodec(
        access=TokenType("access", access_ring(settings, clock), settings.jwt_access_age_s),
        refresh=TokenType("refresh", refresh_ring(settings), settings.jwt_refresh_age_s),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_s=settings.jwt_leeway_s,
        clock=clock,
    )
    return Services(
        tokens=tokens,
        accounts=accounts,
        sessions=SessionService(
            accounts,
            users,
            sessions,
            tokens,
            clock,
            limiter,
            SessionPolicy(
                rotation_required=settings.refresh_rotation == "required",
                reuse_grace_s=settings.refresh_reuse_grace_s,
                idle_timeout_s=settings.session_idle_timeout_s,
            ),
            hasher=hasher,
            events=hooks.events,
        ),
        closers=closers,
        probes=probes,
        hashing_backlog=lambda: hasher.pending,
        pool_usage=pool_usage,
        lifecycle=lifecycle,
        users_db=databases["users"],
        outbox=mail.outbox,
        mailer=mail.mailer,
        delivery=mail.delivery,
        key_reload=None if settings.uses_hmac_access_tokens else KeyReload(settings, tokens, clock),
        events=hooks.events,
        webhook_delivery=hooks.delivery,
    )


def account_lifecycle(
    settings: Settings,
    db: TransactionalDatabase,
    users: UserStore,
    sessions: SessionStore,
    mailer: Mailer,
    hasher: PasswordHasher,
    limiter: RateLimiter,
    clock: Clock,
    password_policy: PasswordPolicy,
    events: EventSink = NO_EVENTS,
) -> AccountLifecycle:
    """The account flows by email, on the users database's tables."""
    assert isinstance(users, SQLUserStore)  # both user stores are SQL tables
    tokens = SQLAccountTokens(
        db,  # type: ignore[arg-type]  # a pool and a file both run single statements
        type(users),
        lock=" FOR UPDATE" if settings.users_backend == "mysql" else "",
    )
    return AccountLifecycle(
        db, users, tokens, sessions, mailer, hasher, limiter, clock,
        policy=LifecyclePolicy(
            link_base_url=settings.link_base_url,
            confirmation_ttl_s=settings.email_confirmation_ttl_s,
            reset_ttl_s=settings.password_reset_ttl_s,
            email_change_ttl_s=settings.email_change_ttl_s,
            resend_cooldown_s=settings.email_resend_cooldown_s,
            requests_per_ip=Limit.parse(settings.rate_limit_email_per_ip),
            requests_per_address=Limit.parse(settings.rate_limit_email_per_address),
            answer_floor_s=settings.email_request_answer_s,
        ),
        password_policy=password_policy,
        floor_overrun=lambda operation: metrics().answer_floor_overruns.labels(operation).inc(),
        events=events,
    )  # fmt: skip


def log_applied(applied: list[Applied]) -> None:
    """Development migrates by itself: what a migration reports goes to the log."""
    for done in applied:
        version, name = done.migration.version, done.migration.name
        log.info("applied migration %04d_%s", version, name)
        if done.report:
            log.info("migration %04d: %s", version, done.report.summary)
            for problem in done.report.problems:
                log.warning("migration %04d: %s", version, problem)


def rate_limit_policy(settings: Settings) -> RateLimitPolicy:
    return RateLimitPolicy(
        login_failures_per_account=Limit.parse(settings.rate_limit_login_failures_per_account),
        login_attempts_per_ip=Limit.parse(settings.rate_limit_login_per_ip),
        registrations_per_ip=Limit.parse(settings.rate_limit_register_per_ip),
        refreshes_per_session=Limit.parse(settings.rate_limit_refresh_per_session),
        password_changes_per_account=Limit.parse(settings.rate_limit_password_change_per_account),
        consecutive_failures=Limit(
            settings.lockout_consecutive_failures, settings.lockout_window_s
        ),
    )


async def _bring_schema(settings: Settings, pool: mysql.MySQLPool) -> None:
    """Development migrates by itself; production raises MigrationsPending when the
    database is behind this release."""
    if not settings.is_production:
        log_applied(await mysql.migrate(pool, email_rule=normalize_email))
        return
    version = await mysql.schema_version(pool)
    if version < latest_version("mysql"):
        raise MigrationsPending(
            f"the database schema is at version {version}, this release needs "
            f"{latest_version('mysql')}: run `authsvc migrate`"
        )


async def _open_stores(
    settings: Settings,
    closers: list[Closer],
    probes: dict[str, Closer],
    during_outage: bool,
    databases: dict[str, OutboxDatabase] | None = None,
) -> tuple[UserStore, SessionStore, CounterStore, PoolUsage]:
    """``databases``: filled with the users database ("users") for the outbox."""
    if "sqlite" in (settings.users_backend, settings.sessions_backend):
        from authsvc.stores import sqlite  # here: aiosqlite stays unloaded otherwise
    sqlite_db: sqlite.SQLiteDatabase | None = None

    async def embedded() -> sqlite.SQLiteDatabase:
        nonlocal sqlite_db
        if sqlite_db is None:
            sqlite_db = await sqlite.SQLiteDatabase.open(
                settings.sqlite_path, settings.store_timeout_s
            )
            closers.append(sqlite_db.close)
            probes["embedded store"] = sqlite_db.ping
            # The embedded file is always kept current.
            log_applied(await sqlite.migrate(sqlite_db, email_rule=normalize_email))
        return sqlite_db

    users: UserStore
    pool_usage: PoolUsage = lambda: None  # noqa: E731 - the embedded store has no pool
    if settings.users_backend == "mysql":
        try:
            pool = await mysql.MySQLPool.open(mysql_config(settings))
            reachable = True
        except StoreUnavailable as exc:
            if not during_outage:
                raise
            log.warning("starting without the database, connecting when it returns: %s", exc)
            pool = await mysql.MySQLPool.open(mysql_config(settings), connect=False)
            reachable = False
        closers.append(pool.close)
        probes["database"] = pool.ping
        pool_usage = pool.usage
        if reachable:  # a database behind this release fails the start, at once
            await _bring_schema(settings, pool)
        else:  # checked when the database returns, before anything else reaches it
            pool.check_before_first_use(functools.partial(_bring_schema, settings, pool))
        users = mysql.MySQLUserStore(pool)
        if databases is not None:
            databases["users"] = pool
    else:
        users = sqlite.SQLiteUserStore(await embedded())
        if databases is not None:
            databases["users"] = await embedded()

    sessions: SessionStore
    if settings.sessions_backend == "redis":
        client = await open_redis(
            RedisConfig(
                url=settings.redis_dsn,
                timeout_s=settings.store_timeout_s,
                cluster=settings.redis_cluster,
                sentinels=settings.redis_sentinel_addresses,
                sentinel_master=settings.redis_sentinel_master,
            ),
            during_outage=during_outage,
        )
        redis_store = RedisSessionStore(
            client, key_prefix=settings.redis_key_prefix, timeout_s=settings.store_timeout_s
        )
        closers.append(redis_store.close)
        probes["redis"] = redis_store.ping
        sessions = redis_store
        counters: CounterStore = RedisCounterStore(
            redis_store.client,
            key_prefix=settings.redis_key_prefix,
            timeout_s=settings.store_timeout_s,
            batch=redis_store.batch,
        )
    else:
        sessions = sqlite.SQLiteSessionStore(await embedded())
        counters = sqlite.SQLiteCounterStore(await embedded())
    return users, sessions, counters, pool_usage


@dataclass
class Mail:
    outbox: OutboxStore
    mailer: Mailer
    delivery: DeliveryLoop | None

    async def stop(self) -> None:
        if self.delivery is not None:
            await self.delivery.stop()


def open_mail(settings: Settings, db: OutboxDatabase, clock: Clock) -> Mail:
    """The outbox in the users database, the mailer that records mail there and the
    delivery loop that sends it: over SMTP_URL, or to the log in development without it.
    Production without SMTP_URL has no loop (nothing could be delivered) and a disabled
    mailer. Raises ConfigError for a mail template that cannot be compiled."""
    from authsvc.delivery.loop import DeliveryLoop
    from authsvc.mail.message import sender_address
    from authsvc.mail.senders import LogSender, MailChannel, Sender, SMTPConfig, SMTPSender
    from authsvc.mail.templates import MailTemplates, TemplateError

    outbox: OutboxStore
    if isinstance(db, mysql.MySQLPool):
        from authsvc.stores.outbox_mysql import MySQLOutboxStore

        outbox = MySQLOutboxStore(db)
    else:
        from authsvc.stores.outbox_sqlite import SQLiteOutboxStore

        outbox = SQLiteOutboxStore(db)
    try:
        templates = MailTemplates(settings.email_templates_dir)
    except TemplateError as exc:
        raise ConfigError(f"EMAIL_TEMPLATES_DIR: {exc}") from None
    sender: Sender | None = None
    if settings.smtp_url is not None:
        sender = SMTPSender(
            SMTPConfig.from_url(
                settings.smtp_url.get_secret_value(),
                require_tls=settings.smtp_require_tls,
                timeout_s=settings.smtp_timeout_s,
                ca_file=settings.smtp_tls_ca,
            )
        )
    elif not settings.is_production:
        sender = LogSender()
    mailer = Mailer(
        templates, outbox, db, clock,
        email_from=settings.email_from,
        service_name=settings.email_service_name,
        enabled=sender is not None,
    )  # fmt: skip
    delivery = None
    if sender is not None:
        delivery = DeliveryLoop(
            outbox,
            MailChannel(sender, sender_address(settings.email_from)[1]),
            retry_policy(settings),
            delivery_settings(settings, send_timeout_s=settings.smtp_timeout_s),
        )
        mailer.on_committed(delivery.wake)
    return Mail(outbox, mailer, delivery)


def retry_policy(settings: Settings) -> RetryPolicy:
    """OUTBOX_MAX_ATTEMPTS and the backoff, alike for every channel of the outbox."""
    from authsvc.core.outbox import RetryPolicy

    return RetryPolicy(settings.outbox_max_attempts, settings.outbox_backoff_base_s,
                       settings.outbox_backoff_max_s)  # fmt: skip


def delivery_settings(settings: Settings, *, send_timeout_s: float) -> DeliverySettings:
    from authsvc.delivery.loop import DeliverySettings

    return DeliverySettings(
        batch=settings.outbox_batch_size,
        lease_s=settings.outbox_lease_s,
        poll_s=settings.outbox_poll_interval_s,
        fault_retry_s=settings.outbox_backoff_base_s,
        send_timeout_s=send_timeout_s,
        keep_sent_s=settings.outbox_keep_sent_s,
    )


@dataclass
class Webhooks:
    events: EventSink
    delivery: DeliveryLoop | None
    close: Callable[[], None] = lambda: None

    @property
    def enabled(self) -> bool:
        return self.delivery is not None

    async def stop(self) -> None:
        if self.delivery is not None:
            await self.delivery.stop()
        self.close()


def open_webhooks(
    settings: Settings, outbox: OutboxStore, db: TransactionalDatabase, clock: Clock
) -> Webhooks:
    """The events recorded in the outbox for WEBHOOKS, and the delivery loop of the
    "webhook" channel; nothing at all without WEBHOOKS (no event is even built)."""
    if not settings.webhooks:
        return Webhooks(NO_EVENTS, None)
    from authsvc.delivery.loop import DeliveryLoop
    from authsvc.webhooks.events import WebhookEvents
    from authsvc.webhooks.sender import WebhookChannel

    events = WebhookEvents(outbox, db, settings.webhooks, clock)
    channel = WebhookChannel(settings.webhooks, timeout_s=settings.webhook_timeout_s,
                             concurrency=settings.webhook_concurrency)  # fmt: skip
    delivery = DeliveryLoop(
        outbox, channel, retry_policy(settings),
        delivery_settings(settings, send_timeout_s=settings.webhook_timeout_s),
    )  # fmt: skip
    events.on_committed(delivery.wake)
    return Webhooks(events, delivery, channel.close)
