"""gwms.config: typed configuration models loaded from YAML, with errors that point at the line.

- :func:`load_config` / :func:`parse_config` read YAML and validate it with a pydantic
  model; :class:`ConfigError` names the file, line, key path, expectation and value.
- :class:`GwmsModel` is the base of every configuration model (unknown keys are errors).
- :func:`dump_config` writes a model back as YAML.
- :func:`register_config_kind` lets a module tell ``gwms config check --kind`` about its model.
"""

from gwms.config.keypath import KeyPathError, describe_key_path, format_key_path, parse_key_path
from gwms.config.kinds import config_kind, config_kinds, register_config_kind
from gwms.config.loader import (
    ConfigDocument,
    ConfigError,
    ConfigProblem,
    dump_config,
    load_config,
    parse_config,
    parse_document,
    read_document,
    validate_document,
)
from gwms.config.model import GwmsModel

__all__ = [
    "ConfigDocument",
    "ConfigError",
    "ConfigProblem",
    "GwmsModel",
    "KeyPathError",
    "config_kind",
    "config_kinds",
    "describe_key_path",
    "dump_config",
    "format_key_path",
    "load_config",
    "parse_config",
    "parse_document",
    "parse_key_path",
    "read_document",
    "register_config_kind",
    "validate_document",
]
