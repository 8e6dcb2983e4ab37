"""Storage: protocols in ``base``, one adapter per technology, and migrations."""
