"""Prometheus metrics on their own port (METRICS_PORT), correct across workers.

With several workers, each writes its samples to files in a folder shared with the
supervisor (prometheus-client's multiprocess mode), and one metrics process serves
their sum; with one worker, it serves its own. Labels hold operation names, outcomes
and store names only: never an email, token or address.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from authsvc.core import audit

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Operation and outcome pairs whose metric children are remembered.
MAX_CHILDREN = 1024

#: Operation labels are root field names of the schema (a bounded set); a document
#: with several root fields counts as "multiple".
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass
class Metrics:
    requests: Counter
    latency: Histogram
    login_failures: Counter
    rate_limited: Counter
    reuse_detected: Counter
    hashing_backlog: Gauge
    store_errors: Counter
    pool_connections: Gauge
    untrusted_forwarding: Counter
    answer_floor_overruns: Counter
    # Per request, looking up labelled children and setting unchanged gauges (each
    # under a lock, in files with several workers) cost more than the counting.
    _children: dict[tuple[str, str], tuple[Any, Any]] = field(default_factory=dict)
    _gauges: tuple[int, tuple[int, int] | None] | None = None

    def observe_request(self, operation: str, outcome: str, seconds: float) -> None:
        children = self._children.get((operation, outcome))
        if children is None:
            label = operation if "+" not in operation else "multiple"
            children = (
                self.requests.labels(label, outcome.split(",")[0]),
                self.latency.labels(label),
            )
            if len(self._children) < MAX_CHILDREN:  # labels are bounded; the memo too
                self._children[(operation, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_gauges(self, hashing_backlog: int, pool: tuple[int, int] | None) -> None:
        if self._gauges == (hashing_backlog, pool):
            return
        self._gauges = (hashing_backlog, pool)
        self.hashing_backlog.set(hashing_backlog)
        if pool is not None:
            size, idle = pool
            self.pool_connections.labels("in_use").set(size - idle)
            self.pool_connections.labels("idle").set(idle)

    def on_audit(self, event: str, fields: dict[str, str]) -> None:
        if event == "login_failed":
            self.login_failures.inc()
        elif event == "rate_limited":
            self.rate_limited.labels(fields.get("scope", "-")).inc()
        elif event == "refresh_reuse_detected":
            self.reuse_detected.inc()


def use_multiprocess(folder: str) -> None:
    """Switch to multiprocess mode before any metric exists (the supervisor, before it
    forks): samples go to files in ``folder``, emptied now."""
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.unlink(os.path.join(folder, name))
    os.environ[MULTIPROCESS_ENV] = folder
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


_metrics: Metrics | None = None


def metrics() -> Metrics:
    """This process's metrics, made on first use (after the supervisor chose the mode)."""
    global _metrics
    if _metrics is None:
        _metrics = _create(REGISTRY)
    return _metrics


def _create(registry: CollectorRegistry) -> Metrics:
    """The service's metrics in ``registry``, subscribed to the audit events they
    count."""
    livesum: dict[str, Any] = {"multiprocess_mode": "livesum"}
    metrics = Metrics(
        requests=Counter("authsvc_requests_total", "Requests by operation and outcome",
                         ["operation", "outcome"], registry=registry),
        latency=Histogram("authsvc_request_duration_seconds", "Request latency",
                          ["operation"], buckets=LATENCY_BUCKETS, registry=registry),
        login_failures=Counter("authsvc_login_failures_total", "Refused logins",
                               registry=registry),
        rate_limited=Counter("authsvc_rate_limited_total", "Requests over a rate limit",
                             ["scope"], registry=registry),
        reuse_detected=Counter("authsvc_refresh_reuse_detected_total",
                               "Spent refresh tokens presented again", registry=registry),
        hashing_backlog=Gauge("authsvc_hashing_backlog", "Passwords waiting or being hashed",
                              registry=registry, **livesum),
        store_errors=Counter("authsvc_store_errors_total",
                             "Requests answered SERVICE_UNAVAILABLE, by store and cause",
                             ["store", "cause"], registry=registry),
        pool_connections=Gauge("authsvc_store_pool_connections", "Database pool connections",
                               ["state"], registry=registry, **livesum),
        untrusted_forwarding=Counter(
            "authsvc_untrusted_forwarding", "Requests with X-Forwarded-For, X-Real-IP or "
            "Forwarded from a peer not in TRUSTED_PROXIES (the headers were ignored)",
            registry=registry),
        answer_floor_overruns=Counter(
            "authsvc_answer_floor_overruns_total", "Requests that must not tell whether an "
            "address has an account and took longer than EMAIL_REQUEST_ANSWER_S (their "
            "time may tell: raise it)", ["operation"], registry=registry),
    )  # fmt: skip
    audit.subscribe(metrics.on_audit)
    return metrics


def aggregate_registry() -> CollectorRegistry:
    """A registry that sums every worker's samples (multiprocess mode)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (the supervisor calls it)."""
    if MULTIPROCESS_ENV in os.environ:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class MetricsHandler(tornado.web.RequestHandler):
    def initialize(self, registry: CollectorRegistry, refresh: Any = None) -> None:
        self.registry = registry
        self.refresh = refresh

    def get(self) -> None:
        if self.refresh is not None:
            self.refresh()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.registry))


def metrics_app(registry: CollectorRegistry, refresh: Any = None) -> tornado.web.Application:
    return tornado.web.Application(
        [(r"/metrics", MetricsHandler, {"registry": registry, "refresh": refresh})],
        log_function=lambda handler: None,
    )


@dataclass
class MailMetrics:
    """One outbox channel's messages by kind: mail by mail/templates.py KINDS (a bounded
    set), webhooks by event type."""

    queued: Counter
    sent: Counter
    retried: Counter
    dead: Counter
    depth: Gauge
    oldest_age: Gauge
    #: Events that could not be recorded at all (webhooks only).
    lost: Counter | None = None


_mail_metrics: MailMetrics | None = None


def mail_metrics() -> MailMetrics:
    """This process's mail metrics, made on first use. The gauges are read from the
    database by every worker's delivery loop, so across workers they are the same
    figure: the maximum of the live workers' (not their sum)."""
    global _mail_metrics
    if _mail_metrics is None:
        livemax: dict[str, Any] = {"multiprocess_mode": "livemax"}
        _mail_metrics = MailMetrics(
            queued=Counter("authsvc_mail_queued_total", "Mails recorded in the outbox",
                           ["kind"]),
            sent=Counter("authsvc_mail_sent_total", "Mails the SMTP server accepted", ["kind"]),
            retried=Counter("authsvc_mail_retried_total",
                            "Failed deliveries that will be tried again", ["kind"]),
            dead=Counter("authsvc_mail_dead_total",
                         "Mails given up on (refused for good, or out of attempts)", ["kind"]),
            depth=Gauge("authsvc_outbox_depth", "Mails queued or being sent", **livemax),
            oldest_age=Gauge("authsvc_outbox_oldest_age_seconds",
                             "Age of the oldest mail queued or being sent", **livemax),
        )  # fmt: skip
    return _mail_metrics


_webhook_metrics: MailMetrics | None = None


def webhook_metrics() -> MailMetrics:
    """The outbox's webhooks, by event type (a bounded set: core/events.py EVENT_TYPES),
    in the mail metrics' shape: queued, delivered, retried, dead, and the gauges."""
    global _webhook_metrics
    if _webhook_metrics is None:
        livemax: dict[str, Any] = {"multiprocess_mode": "livemax"}
        _webhook_metrics = MailMetrics(
            queued=Counter("authsvc_webhook_queued_total",
                           "Webhook deliveries recorded in the outbox (one per endpoint)",
                           ["kind"]),
            sent=Counter("authsvc_webhook_delivered_total",
                         "Webhook deliveries an endpoint answered 2xx", ["kind"]),
            retried=Counter("authsvc_webhook_retried_total",
                            "Failed webhook deliveries that will be tried again", ["kind"]),
            dead=Counter("authsvc_webhook_dead_total",
                         "Webhook deliveries given up on (out of attempts)", ["kind"]),
            depth=Gauge("authsvc_webhook_outbox_depth",
                        "Webhook deliveries queued or being sent", **livemax),
            oldest_age=Gauge("authsvc_webhook_outbox_oldest_age_seconds",
                             "Age of the oldest webhook delivery queued or being sent",
                             **livemax),
            lost=Counter("authsvc_webhook_events_lost_total",
                         "Events of Redis-only state (session.revoked, login.locked) that "
                         "could not be recorded (the database was down)", ["kind"]),
        )  # fmt: skip
    return _webhook_metrics


def outbox_metrics(channel: str) -> MailMetrics:
    """The metrics of one outbox channel ("email", "webhook")."""
    return webhook_metrics() if channel == "webhook" else mail_metrics()
