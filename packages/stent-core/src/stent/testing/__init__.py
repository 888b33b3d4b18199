"""stent's testing kit: the conformance suite for adapters, and tools for testing durable code."""
