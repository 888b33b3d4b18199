"""The testing kit's fixtures, as a user's ``pytest_plugins = ["stent.testing.pytest_plugin"]`` provides them.

A non-root conftest cannot name plugins, so the fixtures are imported here; the subprocess tests of
``test_user_project.py`` load the plugin exactly as a user does.
"""

from stent.testing.fixtures import (  # noqa: F401
    stent_clock,
    stent_executor,
    stent_simulator,
    stent_sqlite_executor,
    stent_worker,
    stent_worker_options,
)
from stent.testing.sim.pytest_plugin import sim  # noqa: F401
