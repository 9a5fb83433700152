"""The manifest's ``tiers`` section: its schema and its check at deploy (``TierConfigError``, which
the gateway reports as ``invalid_manifest``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator

from .errors import TierConfigError

TIERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "generative": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "model": {"type": "string", "minLength": 1},
                "prompt": {"type": "string"},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            },
        },
        "agentic": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "model": {"type": "string", "minLength": 1},
                "instructions": {"type": "string"},
                "tools": {
                    "type": "array",
                    "items": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,62}$"},
                    "uniqueItems": True,
                },
                "max_steps": {"type": "integer", "minimum": 1, "maximum": 100},
            },
        },
        "human": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "instructions": {"type": "string"},
                "default_output": {},
                "expires_in_s": {"type": "integer", "minimum": 1},
            },
        },
    },
}

_VALIDATOR = Draft202012Validator(TIERS_SCHEMA)


MODEL_TIERS = ("generative", "agentic")


def tier_checker(
    available: Iterable[str], default_model: str | None = None
) -> Callable[[Mapping[str, Any]], None]:
    """A deploy-time check of ``tiers`` against the schema and the tiers this gateway runs; a
    model tier names its model unless the gateway has a default (``TIERGATE_LLM_MODEL``), so a
    tier that could never call a model is refused at deploy, not at its first escalation."""
    names = frozenset(available)

    def check(tiers: Mapping[str, Any]) -> None:
        for error in sorted(
            _VALIDATOR.iter_errors(dict(tiers)), key=lambda e: list(e.absolute_path)
        ):
            path = ".".join(["tiers", *(str(p) for p in error.absolute_path)])
            raise TierConfigError(f"{path}: {error.message}", field=path)
        for name in tiers:
            if name not in names:
                raise TierConfigError(
                    f"tiers.{name}: this gateway has no {name} tier", field=f"tiers.{name}"
                )
        for name in MODEL_TIERS:
            if name in tiers and not tiers[name].get("model") and not default_model:
                raise TierConfigError(
                    f"tiers.{name}.model: no model given, and the gateway has no default "
                    "(TIERGATE_LLM_MODEL)",
                    field=f"tiers.{name}.model",
                )

    return check
