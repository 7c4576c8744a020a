"""The SearchIndex port on OpenSearch (opensearch-py 3.x).

- ``layout``: names, the index template, bulk actions and search bodies (pure, golden-tested);
- ``index``: ``OpenSearchIndex`` (the port, aliases, build/promote/rollback/prune, status);
- ``verify``: database against index per owner, and repair through the runner;
- ``client``: the configured opensearch-py client; ``scene_counts``: scenes per owner (SQL).
"""

from scenedex.adapters.opensearch.client import make_client
from scenedex.adapters.opensearch.index import OpenSearchIndex
from scenedex.adapters.opensearch.layout import IndexLayout, IndexNames
from scenedex.adapters.opensearch.scene_counts import sql_scene_counts
from scenedex.adapters.opensearch.state import (
    AliasState,
    Coverage,
    IndexStatus,
    RolledBackIndexError,
    SearchIndexBusyError,
)

__all__ = [
    "AliasState",
    "Coverage",
    "IndexLayout",
    "IndexNames",
    "IndexStatus",
    "OpenSearchIndex",
    "RolledBackIndexError",
    "SearchIndexBusyError",
    "make_client",
    "sql_scene_counts",
]
