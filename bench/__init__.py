"""Reproducible benchmarks, run from the repository root: ``python -m bench.run`` (``make bench``)
and ``python -m bench.soak`` (``make soak``)."""
