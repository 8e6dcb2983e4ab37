"""Resolvers: unpack the arguments, call one service method, shape the result.

Each is written against the RequestContext alone; RESOLVERS wraps them in graphql-core's
signature, and the direct path (graphql/direct.py) calls the argument-less ones as is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

import orjson
from graphql import GraphQLResolveInfo

from authsvc.core.errors import InvalidInput
from authsvc.core.sessions import TokenPair
from authsvc.graphql.context import RequestContext
from authsvc.graphql.schema import Resolver, serialize_datetime
from authsvc.stores.base import User

Info = GraphQLResolveInfo[RequestContext]


def _json(value: dict[str, Any]) -> str:
    """Compact JSON, as the Node service's JSON.stringify wrote payloads."""
    option = orjson.OPT_PASSTHROUGH_DATETIME  # dates as the DateTime scalar writes them
    return orjson.dumps(value, default=serialize_datetime, option=option).decode()


def mutation_response(status: int, payload: str | None = None) -> dict[str, Any]:
    return {"status": status, "errors": [], "payload": payload}


def token_pair(pair: TokenPair) -> dict[str, Any]:
    return {
        "accessToken": pair.access_token,
        "refreshToken": pair.refresh_token,
        "expiresIn": pair.expires_in,
        "tokenType": pair.token_type,
    }


def refused(ctx: RequestContext, exc: InvalidInput) -> dict[str, Any]:
    """A MutationResponse for refused input: the Node service's shape and status."""
    ctx.hints.retry_after(exc.retry_after_s)
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


async def resolve_me(ctx: RequestContext) -> dict[str, Any]:
    user = await ctx.services.sessions.user_for_access_token(ctx.bearer_token())
    return user_fields(user)


async def resolve_register(ctx: RequestContext, email: str, password: str) -> dict[str, Any]:
    try:
        user = await ctx.services.accounts.register(email, password, ctx.client.limited_as)
    except InvalidInput as exc:
        return refused(ctx, exc)
    return mutation_response(201, _json(user_fields(user)))


async def resolve_login(ctx: RequestContext, email: str, password: str) -> dict[str, Any]:
    try:
        pair = await ctx.services.sessions.login(email, password, ctx.client)
    except InvalidInput as exc:
        return refused(ctx, exc)
    payload = {"access_token": pair.access_token, "refresh_token": pair.refresh_token}
    response = mutation_response(200, _json(payload))
    response["tokens"] = token_pair(pair)
    return response


async def resolve_refresh(ctx: RequestContext) -> str:
    return await ctx.services.sessions.refresh(ctx.bearer_token())


async def resolve_logout(ctx: RequestContext) -> bool:
    await ctx.services.sessions.logout(ctx.bearer_token())
    return True


async def resolve_renew(ctx: RequestContext) -> dict[str, Any]:
    return token_pair(await ctx.services.sessions.renew(ctx.bearer_token()))


async def resolve_sessions(ctx: RequestContext) -> list[dict[str, Any]]:
    views = await ctx.services.sessions.list_sessions(ctx.bearer_token())
    return [
        {
            "id": view.session.id,
            "createdAt": view.session.created_at,
            "lastUsedAt": view.session.last_used_at,
            "expiresAt": view.session.expires_at,
            "userAgent": view.session.user_agent,
            "ip": view.session.ip,
            "current": view.current,
        }
        for view in views
    ]


async def resolve_logout_all(ctx: RequestContext) -> bool:
    await ctx.services.sessions.logout_all(ctx.bearer_token())
    return True


async def resolve_revoke_session(ctx: RequestContext, id: str) -> bool:
    return await ctx.services.sessions.revoke_session(ctx.bearer_token(), id)


async def resolve_change_password(
    ctx: RequestContext, currentPassword: str, newPassword: str
) -> dict[str, Any]:
    sessions = ctx.services.sessions
    return await answered(
        ctx, sessions.change_password(ctx.bearer_token(), currentPassword, newPassword)
    )


async def answered(ctx: RequestContext, work: Awaitable[User | None]) -> dict[str, Any]:
    """A MutationResponse for a change: 200 (with the user as ``payload`` when the change
    returns one), or the refusal of its input."""
    try:
        user = await work
    except InvalidInput as exc:
        return refused(ctx, exc)
    return mutation_response(200, None if user is None else _json(user_fields(user)))


async def resolve_request_email_confirmation(ctx: RequestContext, email: str) -> dict[str, Any]:
    lifecycle = ctx.services.lifecycle
    return await answered(ctx, lifecycle.request_email_confirmation(email, ctx.client.limited_as))


async def resolve_confirm_email(ctx: RequestContext, token: str) -> dict[str, Any]:
    return await answered(ctx, ctx.services.lifecycle.confirm_email(token))


async def resolve_request_password_reset(ctx: RequestContext, email: str) -> dict[str, Any]:
    lifecycle = ctx.services.lifecycle
    return await answered(ctx, lifecycle.request_password_reset(email, ctx.client.limited_as))


async def resolve_reset_password(
    ctx: RequestContext, token: str, newPassword: str
) -> dict[str, Any]:
    lifecycle = ctx.services.lifecycle
    return await answered(ctx, lifecycle.reset_password(token, newPassword, ctx.client.limited_as))


async def resolve_request_email_change(
    ctx: RequestContext, newEmail: str, currentPassword: str
) -> dict[str, Any]:
    user = await ctx.services.sessions.user_for_access_token(ctx.bearer_token())
    lifecycle = ctx.services.lifecycle
    return await answered(ctx, lifecycle.request_email_change(user, newEmail, currentPassword))


async def resolve_confirm_email_change(ctx: RequestContext, token: str) -> dict[str, Any]:
    return await answered(ctx, ctx.services.lifecycle.confirm_email_change(token))


ContextResolver = Callable[..., Awaitable[Any]]

#: Root fields by type, as functions of the request context (and the field's arguments).
OPERATIONS: dict[str, dict[str, ContextResolver]] = {
    "Query": {"me": resolve_me, "sessions": resolve_sessions},
    "Mutation": {
        "register": resolve_register,
        "login": resolve_login,
        "refresh": resolve_refresh,
        "logout": resolve_logout,
        "renew": resolve_renew,
        "logoutAll": resolve_logout_all,
        "revokeSession": resolve_revoke_session,
        "changePassword": resolve_change_password,
        "requestEmailConfirmation": resolve_request_email_confirmation,
        "confirmEmail": resolve_confirm_email,
        "requestPasswordReset": resolve_request_password_reset,
        "resetPassword": resolve_reset_password,
        "requestEmailChange": resolve_request_email_change,
        "confirmEmailChange": resolve_confirm_email_change,
    },
}


def graphql_resolver(operation: ContextResolver) -> Resolver:
    """``operation`` in graphql-core's resolver signature."""

    @wraps(operation)
    async def resolve(_root: None, info: Info, **arguments: Any) -> Any:
        return await operation(info.context, **arguments)

    return resolve


RESOLVERS: dict[str, dict[str, Resolver]] = {
    type_name: {name: graphql_resolver(op) for name, op in fields.items()}
    for type_name, fields in OPERATIONS.items()
}
