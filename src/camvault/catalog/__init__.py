"""The PostgreSQL catalog: schema migrations, named queries, and the ``Catalog`` facade."""

from camvault.catalog.catalog import Catalog
from camvault.catalog.connector import Connector, PsycopgConnector

__all__ = ["Catalog", "Connector", "PsycopgConnector"]
