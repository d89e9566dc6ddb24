"""Configuration: loading YAML experiments into the typed schema, their fingerprints and run
records, where koemo's configs and notebooks live, and what a prepared workdir records about
its inputs.

Lowest layer with koemo.errors: nothing here imports another koemo package."""
from koemo.config.load import ConfigError, load_config
from koemo.config.schema import Config

__all__ = ["Config", "ConfigError", "load_config"]
