"""The order-processing demo that ``stent demo`` runs."""
