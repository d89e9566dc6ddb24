"""No refactor may change a cache or run key of a shipped config (see golden_fingerprints)."""
import json

import pytest

from tests.golden_fingerprints import GOLDEN, config_keys, shipped_configs

GOLDEN_KEYS = json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_every_shipped_config_is_pinned():
    assert sorted(GOLDEN_KEYS) == shipped_configs()


@pytest.mark.parametrize("name", sorted(GOLDEN_KEYS))
def test_keys_unchanged(name):
    keys, golden = config_keys(name), GOLDEN_KEYS[name]
    assert {k: v for k, v in keys.items() if k != "runs"} == \
        {k: v for k, v in golden.items() if k != "runs"}
    assert sorted(keys["runs"]) == sorted(golden["runs"])
    for run, value in golden["runs"].items():
        assert keys["runs"][run] == value, run
