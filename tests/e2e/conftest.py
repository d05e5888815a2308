"""Browser tests drive a JupyterLab subprocess, not the in-process server of pytest-jupyter.

Playwright's sync API keeps its own event loop running in this thread, so pytest-jupyter's
autouse loop and server clean-up (meant for the in-process server) must stand aside here.
"""

import asyncio

import pytest


@pytest.fixture
def jp_asyncio_loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def jp_server_cleanup():
    yield
