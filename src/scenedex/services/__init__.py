"""Use cases that sit between the entry points (CLI, worker, API) and the domain."""
