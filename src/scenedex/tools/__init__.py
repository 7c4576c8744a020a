"""Operator tools: the benchmarks (bench, embed-bench), doctor and the demo; apart from the use cases in ``services/``."""
