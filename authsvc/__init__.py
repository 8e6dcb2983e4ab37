"""authsvc: a JWT authentication service for backend services."""

__version__ = "0.1.0"
