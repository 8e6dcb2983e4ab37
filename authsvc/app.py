"""make_app(settings, services): the Tornado application, routes only."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import tornado.routing
import tornado.web

from authsvc.graphql.client_address import ClientAddressResolver, UntrustedForwardingWarning
from authsvc.graphql.cors import CORSPolicy
from authsvc.graphql.discovery import PATHS as DISCOVERY_PATHS
from authsvc.graphql.discovery import DiscoveryHandler, discovery_document
from authsvc.graphql.endpoints import (
    HealthHandler,
    IntrospectionHandler,
    JWKSHandler,
    ReadinessHandler,
)
from authsvc.graphql.executor import GraphQLExecutor
from authsvc.graphql.forward_auth import ForwardAuthHandler
from authsvc.graphql.handler import STATIC, GraphQLHandler
from authsvc.graphql.http import JSONHandler, NotFoundHandler
from authsvc.graphql.limits import QueryLimits
from authsvc.graphql.pacing import Pacing
from authsvc.graphql.pages import FLOWS, LinkPageHandler, PageTemplates
from authsvc.graphql.resolvers import RESOLVERS
from authsvc.graphql.schema import build_executable_schema
from authsvc.logs import stamp_request_ids
from authsvc.metrics import metrics
from authsvc.services import Services
from authsvc.settings import Settings, normalize_origin

access_log = logging.getLogger("authsvc.access")


def log_request(handler: tornado.web.RequestHandler) -> None:
    """One line per request. Only names and codes: never a header, body or token."""
    status = handler.get_status()
    request = handler.request
    started = getattr(handler, "started", None)
    duration_ms = (
        (time.perf_counter() - started) * 1000 if started else request.request_time() * 1000
    )
    level = logging.INFO if status < 500 else logging.ERROR
    if isinstance(handler, JSONHandler):
        request_id, operation, outcome = handler.request_id, handler.operation, handler.outcome
    else:
        request_id = operation = outcome = "-"
    if outcome == "-":
        outcome = f"http_{status}"
    counted = metrics()
    counted.observe_request(operation, outcome, duration_ms / 1000)
    services = handler.application.settings.get("services")
    if services is not None:
        counted.observe_gauges(services.hashing_backlog(), services.pool_usage())
    access_log.log(
        level,
        "request_id=%s method=%s path=%s status=%d op=%s outcome=%s duration_ms=%.1f",
        request_id,
        request.method,
        request.path,
        status,
        operation,
        outcome,
        duration_ms,
    )


class InFlight:
    """Requests being served, so that shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self.count = 0
        #: Shutting down: responses ask the client (nginx) not to reuse the connection.
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        self.count += 1
        self._idle.clear()

    def finished(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def drained(self, timeout_s: float) -> bool:
        """Wait until no request is in flight; False if ``timeout_s`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


def public_origin(public_url: str | None) -> str | None:
    """The origin (scheme://host[:port]) of PUBLIC_URL, as a browser writes Origin."""
    if not public_url:
        return None
    parts = urlsplit(public_url)
    return normalize_origin(f"{parts.scheme}://{parts.netloc}")


def cors_policy(settings: Settings) -> CORSPolicy | None:
    """/graphql's CORS; None when no origin is allowed (CORS off)."""
    origins = settings.cors_allowed_origins
    if not origins:
        return None
    return CORSPolicy(
        origins=frozenset(origins),
        any_origin=settings.cors_any_origin,
        credentials=settings.cors_allow_credentials,
        max_age_s=settings.cors_max_age_s,
    )


def make_app(
    settings: Settings, services: Services, in_flight: InFlight | None = None
) -> tornado.web.Application:
    stamp_request_ids()
    metrics()  # now, so that it hears the audit events of this process's first request
    limits = QueryLimits(
        max_depth=settings.graphql_max_depth,
        max_aliases=settings.graphql_max_aliases,
        max_root_fields=settings.graphql_max_root_fields,
        max_fields=settings.graphql_max_fields,
        max_tokens=settings.graphql_max_tokens,
        max_variables_bytes=settings.graphql_max_variables_bytes,
        introspection=settings.introspection_enabled,
        suggestions=settings.introspection_enabled,
    )
    executor = GraphQLExecutor(
        build_executable_schema(RESOLVERS), settings.document_cache_size, limits
    )
    # One of each for every route: a client is the same client on /graphql and on the
    # pages, for its address, its limits and its pacing.
    addresses = ClientAddressResolver(
        settings.trusted_proxy_networks,
        settings.ipv6_rate_limit_prefix,
        UntrustedForwardingWarning(metrics().untrusted_forwarding.inc),
    )
    pacing = Pacing(
        settings.refusal_hold_max_s, settings.refusals_held_max, settings.refusals_ignored_max
    )
    routes: list[tornado.routing.Rule | tuple[Any, ...]] = [
        (
            r"/graphql",
            GraphQLHandler,
            {
                "executor": executor,
                "services": services,
                "addresses": addresses,
                "max_body_bytes": settings.max_body_bytes,
                "batch_max": settings.graphql_batch_max,
                "graphiql": settings.graphiql_enabled,
                "pacing": pacing,
                "cors": cors_policy(settings),
            },
        ),
        (
            r"/\.well-known/jwks\.json",
            JWKSHandler,
            {"services": services, "max_age_s": settings.jwks_max_age_s},
        ),
        (
            r"/auth",
            ForwardAuthHandler,
            {
                "services": services,
                "cookie": settings.forward_auth_cookie,
                "cache_s": settings.forward_auth_cache_s,
                "addresses_verified": settings.email_confirmation,
                "public_origin": public_origin(settings.public_url),
            },
        ),
        (r"/healthz", HealthHandler),
        (r"/readyz", ReadinessHandler, {"services": services}),
    ]
    if not settings.email_link_base_url:
        # The mails' links lead here unless they lead to the product's own pages.
        templates = PageTemplates()
        public_host = urlsplit(settings.public_url).netloc if settings.public_url else None
        for path, flow in FLOWS.items():
            routes.append(
                (
                    path,
                    LinkPageHandler,
                    {
                        "flow": flow,
                        "services": services,
                        "templates": templates,
                        "addresses": addresses,
                        "pacing": pacing,
                        "max_body_bytes": settings.max_body_bytes,
                        "public_host": public_host,
                    },
                )
            )
    if settings.discovery_enabled:
        # One document at both names: OIDC verifiers read the first, RFC 8414 ones the second.
        discovery = {"document": discovery_document(settings), "max_age_s": settings.jwks_max_age_s}
        routes.extend((path, DiscoveryHandler, discovery) for path in DISCOVERY_PATHS)
    if settings.graphiql_enabled:
        # The page's own assets, shipped in the package: it works with no internet.
        routes.append((r"/graphiql/(.*)", tornado.web.StaticFileHandler, {"path": str(STATIC)}))
    if settings.introspection_client_secret is not None:
        # Not routed at all without a secret: nobody can reach it unauthenticated.
        routes.append(
            (
                r"/introspect",
                IntrospectionHandler,
                {
                    "services": services,
                    "client_id": settings.introspection_client_id,
                    "client_secret": settings.introspection_client_secret.get_secret_value(),
                },
            )
        )
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        in_flight=in_flight or InFlight(),
        services=services,
        log_function=log_request,
        xsrf_cookies=False,
        serve_traceback=False,
    )
