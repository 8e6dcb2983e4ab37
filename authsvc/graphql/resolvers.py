"""Resolvers: unpack the arguments, call one service method, shape the result."""

from __future__ import annotations

import json
from typing import Any

from graphql import GraphQLResolveInfo

from authsvc.core.errors import InvalidInput
from authsvc.graphql.context import RequestContext
from authsvc.graphql.schema import Resolver, serialize_datetime
from authsvc.stores.base import User

Info = GraphQLResolveInfo[RequestContext]


def _ctx(info: Info) -> RequestContext:
    return info.context


def mutation_response(status: int, payload: str | None = None) -> dict[str, Any]:
    return {"status": status, "errors": [], "payload": payload}


def refused(exc: InvalidInput) -> dict[str, Any]:
    """A MutationResponse for refused input: the Node service's shape and status."""
    return {
        "status": exc.status,
        "errors": [{"path": e.path, "message": e.message} for e in exc.errors],
        "payload": None,
    }


def user_fields(user: User) -> dict[str, Any]:
    """The public fields of a user, by their GraphQL names."""
    return {
        "id": user.id,
        "email": user.email,
        "confirmed": user.confirmed,
        "createdAt": user.created_at,
        "updatedAt": user.updated_at,
    }


async def resolve_me(_root: None, info: Info) -> dict[str, Any]:
    ctx = _ctx(info)
    user = await ctx.services.sessions.user_for_access_token(ctx.bearer_token())
    return user_fields(user)


async def resolve_register(_root: None, info: Info, email: str, password: str) -> dict[str, Any]:
    try:
        user = await _ctx(info).services.accounts.register(email, password)
    except InvalidInput as exc:
        return refused(exc)
    return mutation_response(201, json.dumps(user_fields(user), default=serialize_datetime))


async def resolve_login(_root: None, info: Info, email: str, password: str) -> dict[str, Any]:
    ctx = _ctx(info)
    try:
        pair = await ctx.services.sessions.login(email, password, ctx.client)
    except InvalidInput as exc:
        return refused(exc)
    payload = {"access_token": pair.access_token, "refresh_token": pair.refresh_token}
    return mutation_response(200, json.dumps(payload))


async def resolve_refresh(_root: None, info: Info) -> str:
    ctx = _ctx(info)
    return await ctx.services.sessions.refresh(ctx.bearer_token())


async def resolve_logout(_root: None, info: Info) -> bool:
    ctx = _ctx(info)
    await ctx.services.sessions.logout(ctx.bearer_token())
    return True


RESOLVERS: dict[str, dict[str, Resolver]] = {
    "Query": {"me": resolve_me},
    "Mutation": {
        "register": resolve_register,
        "login": resolve_login,
        "refresh": resolve_refresh,
        "logout": resolve_logout,
    },
}
