"""A newsletter.yml checked before, read back without checking it again.

Checking a config builds pydantic's validators for every section and asks CLDR (Babel),
croniter and email-validator about its language, schedule and addresses: most of a dry
run's start-up, for a file that rarely changes between two commands. A config that passed
is kept in ``.newsletter/cache/config/`` (``memo``) under a digest of its text and of this
package's and the libraries' files, with the names of the environment variables its
settings were expanded from and a digest of their values. A command whose file, code and
variables are the same builds the settings from what was kept: the checks gave their
verdict on exactly this input. Anything else is checked in full, and a config with a
problem is never kept, so its errors read as they always did.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .config import Config, models_in, parse_config_reading
from .memo import Memo, code_stamp, digest, settings_stamp


def remembered_settings(path: Path, text: str, shown: str) -> Config:
    """The settings of the file at ``path`` (whose text is ``text``), checked or kept."""
    memo = Memo(path.parent, "config")
    key = digest(code_stamp(), str(path), text)
    kept = memo.get(key)
    environment = _environment(kept.get("variables")) if isinstance(kept, dict) else None
    if environment is not None and kept.get("environment") == environment:
        try:
            return typing.cast(Config, _construct(Config, kept["settings"]))
        except (KeyError, TypeError, ValueError):  # not an entry this version wrote
            pass
    config, variables = parse_config_reading(text, shown)
    names = sorted(variables)
    memo.put(
        key,
        {
            "variables": names,
            "environment": _environment(names),
            "settings": settings_stamp(config),
        },
    )
    return config


def _environment(names: Any) -> str | None:
    """A digest of the variables' present values; None for what is not a list of names."""
    if not isinstance(names, list):
        return None
    return digest([[str(name), os.environ.get(str(name))] for name in names])


def _construct(model: type[BaseModel], data: Any) -> BaseModel:
    """The model holding ``data`` (its own dump) as it is: what was checked is not again."""
    if not isinstance(data, dict):
        raise TypeError(f"{model.__name__}: expected a mapping")
    values = {
        name: _value(field.annotation, data[name]) for name, field in model.model_fields.items()
    }
    return model.model_construct(**values)


def _value(annotation: Any, value: Any) -> Any:
    models = models_in(annotation)
    if not models or value is None:
        return value
    if isinstance(value, list):
        return [_one_of(models, item) for item in value]
    return _one_of(models, value)


def _one_of(models: tuple[type[BaseModel], ...], data: Any) -> BaseModel:
    """The section as the one model it can be, or, for a source, the one its ``type`` names."""
    if len(models) == 1:
        return _construct(models[0], data)
    kind = data.get("type") if isinstance(data, dict) else None
    for model in models:
        if typing.get_args(model.model_fields["type"].annotation) == (kind,):
            return _construct(model, data)
    raise ValueError(f"no section of type {kind!r}")
