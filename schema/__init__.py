"""The GraphQL SDL, installed as the ``authsvc.schema`` package so a wheel carries it."""
