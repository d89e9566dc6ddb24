"""Configuration: loading YAML experiments, their fingerprints and run records, where koemo's
configs and notebooks live, and what a prepared workdir records about its inputs.

Lowest layer with koemo.errors: nothing here imports another koemo package."""
from koemo.config.load import ConfigError, load_config

__all__ = ["ConfigError", "load_config"]
