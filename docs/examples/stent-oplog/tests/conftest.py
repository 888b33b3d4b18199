# The conformance suite's plugin: the capabilities summary, and async tests without pytest-asyncio.
pytest_plugins = ["stent.testing.conformance.plugin"]
