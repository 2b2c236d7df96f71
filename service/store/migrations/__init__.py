"""Alembic migrations of the store, shipped in the package so an installed service can upgrade its database."""
