"""HTTP <-> GraphQL: the ``/graphql`` handler (and, for a browser in development,
the GraphiQL page)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import tornado.web

from authsvc.core.sessions import ClientInfo
from authsvc.graphql.client_address import ClientAddressResolver
from authsvc.graphql.context import RequestContext, ResponseHints
from authsvc.graphql.cors import ALLOWED_METHODS, CORSPolicy
from authsvc.graphql.executor import GraphQLExecutor, MutationOverGet, Response
from authsvc.graphql.http import BadRequest
from authsvc.graphql.paced_handler import PacedHandler
from authsvc.graphql.pacing import Pacing
from authsvc.services import Services

STATIC = Path(__file__).resolve().parent / "static"
GRAPHIQL_PAGE = STATIC / "graphiql.html"


@tornado.web.stream_request_body
class GraphQLHandler(PacedHandler):
    """The body is streamed so that an oversized one is refused (413) before it is
    buffered: from its Content-Length at once, or once the chunks pass the limit."""

    #: CORS for pages on other origins; None: off (no CORS header, no Vary).
    cors: CORSPolicy | None = None

    def initialize(
        self,
        executor: GraphQLExecutor,
        services: Services,
        addresses: ClientAddressResolver,
        max_body_bytes: int,
        batch_max: int,
        pacing: Pacing,
        graphiql: bool = False,
        cors: CORSPolicy | None = None,
    ) -> None:
        self.cors = cors
        self.set_default_headers()  # Tornado set them before the policy was known
        self.graphiql = graphiql
        self.executor = executor
        self.services = services
        self.addresses = addresses
        self.start_body(max_body_bytes)
        self.batch_max = batch_max
        self.pacing = pacing
        self.hints = ResponseHints()
        self.answering = False  # until the whole body is in

    def set_default_headers(self) -> None:
        # Tornado calls this again on every clear(), send_error's too: an error answer
        # (405, 500) keeps the CORS headers, so that the page can read it.
        if self.cors is not None:
            preflight = self.request.method == "OPTIONS" and bool(
                self.request.headers.get("Access-Control-Request-Method")
            )
            for name, value in self.cors.headers(self.request.headers, preflight=preflight).items():
                self.set_header(name, value)

    def prepare(self) -> None:
        super().prepare()
        if self.request.method == "OPTIONS":
            return  # a preflight carries no credentials: not admitted, paced or limited
        if self.request.method == "POST" and not _is_json(self.request.headers):
            self._refuse(BadRequest(415, JSON_ONLY))
            return
        self.admit_client()
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            self._refuse(self._too_large())

    def _wants_html(self) -> bool:
        """A browser opening /graphql gets the GraphiQL page (which reads `?query=`);
        API clients ask for JSON."""
        return "text/html" in self.request.headers.get("Accept", "")

    def _too_large(self) -> BadRequest:
        return BadRequest(413, f"Request body is larger than {self.max_body_bytes} bytes")

    async def post(self) -> None:
        self.answering = True
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
        await self._pace()
        self._answer(response)

    def options(self) -> None:
        """A CORS preflight (or a plain OPTIONS): 204, cheap (nothing parsed, nothing
        counted against a limit). An origin not allowed gets it too, with no CORS
        header: its browser then refuses to send the request, and a refusal status
        would tell a prober nothing more."""
        self.answering = True
        self.outcome = "options"
        self.set_header("Allow", f"{ALLOWED_METHODS}, OPTIONS")
        self.set_status(204)
        self.finish()

    async def get(self) -> None:
        self.answering = True
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
        await self._pace()
        self.write_json(200, [r.body for r in responses])

    async def _run_graphql(self, request: GraphQLRequest, *, allow_mutation: bool) -> Response:
        headers = self.request.headers
        address = self.client_ip
        context = RequestContext(
            services=self.services,
            authorization=headers.get("Authorization"),
            client=ClientInfo(
                ip=address,
                user_agent=headers.get("User-Agent", ""),
                limit_subject=self.addresses.limit_subject(address),
            ),
            request_id=self.request_id,
            hints=self.hints,  # one for every operation of a batch
        )
        try:
            response = await self.executor.run(
                request.query,
                request.variables,
                request.operation_name,
                context,
                allow_mutation=allow_mutation,
            )
        except MutationOverGet:
            self.set_header("Allow", "POST")
            raise BadRequest(405, "Mutations must be sent with POST") from None
        if self.hints.retry_after_s is not None:  # busy or rate limited (RFC 9110 §10.2.3)
            self.set_header("Retry-After", str(self.hints.retry_after_s))
        return response

    async def _pace(self) -> None:
        await self.pace(self.hints.retry_after_s)

    def _answer(self, response: Response) -> None:
        self.operation = response.operation
        self.outcome = response.outcome
        self.write_json(response.status, response.body)

    def _refuse(self, exc: BadRequest) -> None:
        self.outcome = f"http_{exc.status}"
        self.write_json(exc.status, {"errors": [{"message": exc.message}]})


#: GraphQL over HTTP (§ "POST"): a POST body is application/json. Anything else is
#: refused before it is read: text/plain and the form types are what a web page can
#: make its visitors' browsers send anywhere without a CORS preflight, so accepting
#: them would let any site spend the per-address limits of its visitors on register
#: and login. The Node service never parsed such bodies either.
JSON_ONLY = "Content-Type must be application/json"


def _is_json(headers: Mapping[str, str]) -> bool:
    """Whether the Content-Type is application/json, parameters (charset) allowed;
    media types are case-insensitive (RFC 9110 §8.3.1)."""
    media_type, _, _ = headers.get("Content-Type", "").partition(";")
    return media_type.strip().lower() == "application/json"


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
