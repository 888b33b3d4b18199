"""The ``stent`` command."""
