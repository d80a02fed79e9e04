"""The PostgreSQL catalog: schema migrations, named queries, and the ``Catalog`` facade."""

from camvault.catalog.connector import Connector, PsycopgConnector
from camvault.catalog.recordings import Catalog

__all__ = ["Catalog", "Connector", "PsycopgConnector"]
