"""The admin/owner HTTP API (FastAPI): ``create_app(settings)``, run by ``scenedex api``.

Admin endpoints (role ``admin``) enqueue and follow reprocess jobs; owner endpoints embed and
search the caller's own videos. Importing this package loads no model and opens no connection.
"""

from scenedex.api.app import create_app
from scenedex.api.auth import ApiConfigError

__all__ = ["ApiConfigError", "create_app"]
