"""The HTTP API (FastAPI): find and play footage through PostgreSQL row-level security."""

from camvault.api.app import ROUTER_MODULES, create_app
from camvault.api.deps import ApiServices

__all__ = ["ROUTER_MODULES", "ApiServices", "create_app"]
