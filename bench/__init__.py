"""Benchmarks (``make bench``); figures and how to read them in docs/performance.md."""
