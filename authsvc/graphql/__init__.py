"""The edge: HTTP <-> GraphQL, schema loading and resolver binding, error formatting."""
