"""Reproducible benchmarks, run from the repository root: ``python -m bench.soak``."""
