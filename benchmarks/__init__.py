"""stent's benchmarks: the workloads of issue 9, measured per storage backend and notifier.

``./dev bench`` runs them (``pytest benchmarks --benchmark-only``); see the README's "Benchmarks" section.  The
workload functions live in :mod:`benchmarks.workloads` and :mod:`benchmarks.scale` and measure themselves, so
``tests/benchmarks`` runs the very same code at a tiny size to keep it working.
"""
