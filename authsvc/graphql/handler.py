"""HTTP <-> GraphQL: the ``/graphql`` handler and JSON answers for HTTP-level errors."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import tornado.web

from authsvc import logs
from authsvc.core.sessions import ClientInfo
from authsvc.graphql.client_address import ClientAddressResolver
from authsvc.graphql.context import RequestContext
from authsvc.graphql.executor import GraphQLExecutor, MutationOverGet, Response
from authsvc.services import Services

error_log = logging.getLogger("authsvc.errors")

STATIC = Path(__file__).resolve().parent / "static"
GRAPHIQL_PAGE = STATIC / "graphiql.html"

#: A client's X-Request-ID is kept only if it is short and plain, so logs stay clean.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class JSONHandler(tornado.web.RequestHandler):
    """Answers every HTTP-level error as ``{"errors": [{"message": …}]}``, never HTML
    or a traceback, and tags every response with a request id."""

    request_id: str = "-"
    operation: str = "-"
    outcome: str = "-"

    def prepare(self) -> None:
        in_flight = self.application.settings["in_flight"]
        in_flight.started()
        self.counted = True
        if in_flight.draining:  # this worker is stopping: the proxy must not reuse this
            self.set_header("Connection", "close")
        self.started = time.perf_counter()
        given = self.request.headers.get("X-Request-ID", "")
        self.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        self.set_header("X-Request-ID", self.request_id)
        logs.request_id.set(self.request_id)  # on every log line of this request

    def on_finish(self) -> None:
        if getattr(self, "counted", False):
            self.counted = False
            self.application.settings["in_flight"].finished()

    def on_connection_close(self) -> None:
        self.on_finish()  # a client that hung up is no longer in flight

    def write_json(self, status: int, body: dict[str, Any] | list[Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(orjson.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Tornado's default names the full URI (a query string may hold a document
        with credentials); ours names the request id and path only."""
        if isinstance(value, tornado.web.HTTPError):
            return  # an answer we chose, already in the access line
        error_log.error(
            "uncaught exception request_id=%s path=%s",
            self.request_id,
            self.request.path,
            exc_info=(typ, value, tb),
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.outcome = f"http_{status_code}"
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"errors": [{"message": self._reason}]}))


class JWKSHandler(JSONHandler):
    """GET /.well-known/jwks.json: the public keys that verify access tokens."""

    #: Verifiers cache the set this long; a new key is published (`authsvc keys
    #: generate`) well before it signs, so they fetch it in time.
    MAX_AGE_S = 300

    def initialize(self, services: Services) -> None:
        self.services = services

    def get(self) -> None:
        self.outcome = "ok"
        self.set_header("Cache-Control", f"public, max-age={self.MAX_AGE_S}")
        self.write_json(200, self.services.tokens.access.ring.jwks())


class IntrospectionHandler(JSONHandler):
    """POST /introspect (RFC 7662): is this token active now? For services that want the
    online check. Callers authenticate with HTTP Basic (client id and secret)."""

    def initialize(self, services: Services, client_id: str, client_secret: str) -> None:
        self.services = services
        self.expected = f"{client_id}:{client_secret}".encode()

    async def post(self) -> None:
        if not self._client_authenticated():
            self.outcome = "http_401"
            self.set_header("WWW-Authenticate", 'Basic realm="authsvc introspection"')
            self.write_json(401, {"error": "invalid_client"})
            return
        token = self.get_body_argument("token", "").strip()
        if not token:
            self.outcome = "http_400"
            self.write_json(
                400, {"error": "invalid_request", "error_description": "token is required"}
            )
            return
        claims = await self.services.sessions.introspect(token)
        self.outcome = "active" if claims else "inactive"
        self.set_header("Cache-Control", "no-store")
        if claims is None:
            self.write_json(200, {"active": False})
            return
        self.write_json(
            200,
            {
                "active": True,
                "token_type": f"{claims.typ}_token",
                "sub": claims.sub,
                "sid": claims.sid,
                "jti": claims.jti,
                "iat": claims.iat,
                "exp": claims.exp,
                "iss": self.services.tokens.issuer,
                "aud": self.services.tokens.audience,
            },
        )

    def _client_authenticated(self) -> bool:
        scheme, _, encoded = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, self.expected)


class HealthHandler(JSONHandler):
    """GET /healthz: the process answers (liveness). Touches no dependency."""

    def get(self) -> None:
        self.outcome = "ok"
        self.set_header("Cache-Control", "no-store")
        self.write_json(200, {"status": "ok"})


class ReadinessHandler(JSONHandler):
    """GET /readyz: every dependency answers within STORE_TIMEOUT_S; 503 naming the
    failing part otherwise, so a load balancer stops sending traffic here."""

    def initialize(self, services: Services) -> None:
        self.services = services

    async def get(self) -> None:
        checks = await self.services.readiness()
        ready = all(state == "ok" for state in checks.values())
        self.outcome = "ready" if ready else "not_ready"
        self.set_header("Cache-Control", "no-store")
        self.write_json(200 if ready else 503, {"status": self.outcome, "checks": checks})


class NotFoundHandler(JSONHandler):
    def prepare(self) -> None:
        super().prepare()
        raise tornado.web.HTTPError(404)


@tornado.web.stream_request_body
class GraphQLHandler(JSONHandler):
    """The body is streamed so that an oversized one is refused (413) before it is
    buffered: from its Content-Length at once, or once the chunks pass the limit."""

    def initialize(
        self,
        executor: GraphQLExecutor,
        services: Services,
        addresses: ClientAddressResolver,
        max_body_bytes: int,
        batch_max: int,
        graphiql: bool = False,
    ) -> None:
        self.graphiql = graphiql
        self.executor = executor
        self.services = services
        self.addresses = addresses
        self.max_body_bytes = max_body_bytes
        self.batch_max = batch_max
        self.body = bytearray()
        self.body_too_large = False

    def prepare(self) -> None:
        super().prepare()
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            self._refuse(self._too_large())

    def data_received(self, chunk: bytes) -> None:
        if self.body_too_large:
            return
        if len(self.body) + len(chunk) > self.max_body_bytes:
            self.body_too_large = True
            self.body.clear()
        else:
            self.body += chunk

    def _wants_html(self) -> bool:
        """A browser opening /graphql gets the GraphiQL page (which reads `?query=`);
        API clients ask for JSON."""
        return "text/html" in self.request.headers.get("Accept", "")

    def _too_large(self) -> BadRequest:
        return BadRequest(413, f"Request body is larger than {self.max_body_bytes} bytes")

    async def post(self) -> None:
        try:
            if self.body_too_large:
                raise self._too_large()
            try:
                body = orjson.loads(self.body)
            except ValueError:  # orjson.JSONDecodeError, invalid UTF-8 included
                raise BadRequest(400, "Request body is not valid JSON") from None
            if isinstance(body, list):
                await self._run_batch(body)
                return
            if not isinstance(body, dict):
                raise BadRequest(400, "Request body must be a JSON object")
            response = await self._run_graphql(_unpack_object(body), allow_mutation=True)
        except BadRequest as exc:
            self._refuse(exc)
            return
        self._answer(response)

    async def get(self) -> None:
        if self.graphiql and self._wants_html():
            self.outcome = "graphiql"
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(GRAPHIQL_PAGE.read_bytes())
            return
        try:
            raw_variables = self.get_query_argument("variables", None)
            try:
                variables = orjson.loads(raw_variables) if raw_variables else None
            except ValueError:
                raise BadRequest(400, "variables is not valid JSON") from None
            request = _unpack(
                self.get_query_argument("query", None),
                variables,
                self.get_query_argument("operationName", None),
            )
            response = await self._run_graphql(request, allow_mutation=False)
        except BadRequest as exc:
            self._refuse(exc)
            return
        self._answer(response)

    async def _run_batch(self, items: list[Any]) -> None:
        """A JSON array of operations, when GRAPHQL_BATCH_MAX allows: each is executed
        (and rate limited) on its own, in order. Raises BadRequest."""
        if not self.batch_max:
            raise BadRequest(400, "Batched requests (a JSON array body) are off on this server")
        if not 1 <= len(items) <= self.batch_max:
            raise BadRequest(400, f"A batch holds 1 to {self.batch_max} operations")
        if not all(isinstance(item, dict) for item in items):
            raise BadRequest(400, "Every operation of a batch must be a JSON object")
        requests = [_unpack_object(item) for item in items]
        responses = [await self._run_graphql(r, allow_mutation=True) for r in requests]
        self.operation = ",".join(r.operation for r in responses)
        self.outcome = ",".join(r.outcome for r in responses)
        self.write_json(200, [r.body for r in responses])

    async def _run_graphql(self, request: GraphQLRequest, *, allow_mutation: bool) -> Response:
        headers = self.request.headers
        context = RequestContext(
            services=self.services,
            authorization=headers.get("Authorization"),
            client=ClientInfo(
                ip=self.addresses.resolve(
                    self.request.remote_ip or "",
                    headers.get("X-Forwarded-For"),
                    headers.get("X-Real-IP"),
                ),
                user_agent=headers.get("User-Agent", ""),
            ),
            request_id=self.request_id,
        )
        try:
            return await self.executor.run(
                request.query,
                request.variables,
                request.operation_name,
                context,
                allow_mutation=allow_mutation,
            )
        except MutationOverGet:
            self.set_header("Allow", "POST")
            raise BadRequest(405, "Mutations must be sent with POST") from None

    def _answer(self, response: Response) -> None:
        self.operation = response.operation
        self.outcome = response.outcome
        self.write_json(response.status, response.body)

    def _refuse(self, exc: BadRequest) -> None:
        self.outcome = f"http_{exc.status}"
        self.write_json(exc.status, {"errors": [{"message": exc.message}]})


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


def _unpack_object(body: dict[str, Any]) -> GraphQLRequest:
    return _unpack(body.get("query"), body.get("variables"), body.get("operationName"))


def _unpack(query: Any, variables: Any, operation_name: Any) -> GraphQLRequest:
    """Check the three request fields' types. Raises BadRequest (400)."""
    if not isinstance(query, str) or not query.strip():
        raise BadRequest(400, 'Missing query: send {"query": "…"}')
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest(400, "variables must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest(400, "operationName must be a string")
    return GraphQLRequest(query, variables, operation_name or None)
