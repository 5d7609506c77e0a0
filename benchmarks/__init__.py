"""Benchmark scripts (run them as modules: ``python -m dagmix.benchmarks.overhead``)."""
