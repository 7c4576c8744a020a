"""Operator tools: the benchmarks (bench, embed-bench), doctor and the demo.

They stand apart from the use cases in ``services/``.
"""
