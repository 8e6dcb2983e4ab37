"""Build the executable schema from the SDL files shipped as ``authsvc.schema``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from graphql import GraphQLObjectType, GraphQLScalarType, GraphQLSchema, build_schema

Resolver = Callable[..., Any]


def load_sdl() -> str:
    """Every ``*.graphql`` file of the installed ``authsvc.schema`` package, in name order."""
    folder = files("authsvc.schema")
    parts = sorted(
        (entry.name, entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".graphql")
    )
    if not parts:
        raise RuntimeError("no *.graphql file found in the authsvc.schema package")
    return "\n".join(text for _, text in parts)


def serialize_datetime(value: Any) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as the Node service wrote dates."""
    if not isinstance(value, datetime):
        raise TypeError(f"DateTime cannot represent {type(value).__name__}")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_executable_schema(
    resolvers: Mapping[str, Mapping[str, Resolver]],
) -> GraphQLSchema:
    """The schema with ``resolvers`` bound. Fails at boot, not at the first request,
    when a root field has no resolver or a resolver names no field."""
    schema = build_schema(load_sdl())
    scalar = schema.type_map["DateTime"]
    assert isinstance(scalar, GraphQLScalarType)
    scalar.coerce_output_value = serialize_datetime
    roots = {"Query": schema.query_type, "Mutation": schema.mutation_type}
    for type_name, root in roots.items():
        if not isinstance(root, GraphQLObjectType):
            continue
        bound = resolvers.get(type_name, {})
        unknown = set(bound) - set(root.fields)
        if unknown:
            raise RuntimeError(f"resolvers for unknown fields {type_name}.{sorted(unknown)}")
        for name, field in root.fields.items():
            if name not in bound:
                raise RuntimeError(f"no resolver for {type_name}.{name}")
            field.resolve = bound[name]
    return schema
