"""The store: the only code that knows the database. ``schema`` holds the versioned migrations,
``store`` the ``Store`` and its queries; the services call its methods and never write SQL."""

from .errors import StoreError
from .schema import MIGRATIONS, SCHEMA_VERSION, SchemaError, SchemaTooNew
from .store import Patient, Store, StoreLocationError, observation_catalogue

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Patient",
    "SchemaError",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "StoreLocationError",
    "observation_catalogue",
]
