"""Schema validation of YAML documents (run config, model and dataset registries) against xmrc/schemas.

Every problem is one `XmrcError` line that names the source and the bad key; absent keys get the schema's
defaults, so later code reads one shape.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import jsonschema
import yaml

from xmrc.exceptions import XmrcError


def _schema(name: str) -> dict:
    """A schema from xmrc/schemas. The config schema is extended by each stage's `config.<stage>.schema.yaml`,
    whose top-level `properties` (one section per stage) are merged in."""
    folder = resources.files("xmrc").joinpath("schemas")
    schema = yaml.safe_load(folder.joinpath(name).read_text(encoding="utf-8"))
    if name == "config.schema.yaml":
        for part in sorted(folder.iterdir(), key=lambda p: p.name):
            if part.name.startswith("config.") and part.name.endswith(".schema.yaml") and part.name != name:
                fragment = yaml.safe_load(part.read_text(encoding="utf-8"))
                schema["properties"].update(fragment.get("properties", {}))
    return schema


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    return "".join(parts).lstrip(".") or "(top level)"


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown key {', '.join(map(repr, extra))}{hint}"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    return error.message


def _fill_defaults(instance: Any, schema: dict) -> None:
    """Insert schema defaults for absent keys (recursively into objects that exist or default to {})."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = sub["default"] if not isinstance(sub["default"], dict) else dict(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)


def validate(instance: Any, schema_name: str, source: str) -> Any:
    """Validate against a schema in xmrc/schemas; raise XmrcError naming the source and the bad key."""
    schema = _schema(schema_name)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise XmrcError(f"{source}: key '{_key_path(best)}': {_message(best)}")
    _fill_defaults(instance, schema)
    return instance
