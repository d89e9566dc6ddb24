"""A hang guard for tests of "fails fast" behaviour: the call runs in a daemon thread and the
test fails naming what hung, instead of timing the call and asserting on seconds."""
from __future__ import annotations

import threading

import pytest

# A fail-fast path returns in about a second; a hub client retrying a dead network takes minutes.
HANG_S = 30


def within_deadline(seconds: float, what: str, fn, *args, **kwargs):
    """fn(*args, **kwargs)'s result, or its exception raised here; pytest.fail when it has not
    returned after `seconds` (a hang, e.g. network retries), naming `what`."""
    outcome = {}

    def call():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as err:        # re-raised in the test's thread below
            outcome["error"] = err

    worker = threading.Thread(target=call, name=f"deadline: {what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"{what} hung: still running after {seconds:g} s", pytrace=False)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
