"""JSON-schema validity of a text (an answer asked to be JSON): it must parse and, given a schema, conform."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from portico.guardrails.base import PASSED, GuardContext, GuardrailConfigError, Verdict


class JsonSchema:
    kind = "json_schema"

    def __init__(self, params: Mapping[str, Any]) -> None:
        schema = params.get("schema", {})
        if not isinstance(schema, dict):
            raise GuardrailConfigError("json_schema: 'schema' must be a JSON object")
        import jsonschema  # only a configured json_schema guardrail pays for it (2 MB resident at start-up)

        self._best_match = jsonschema.exceptions.best_match
        try:
            validator_class = jsonschema.validators.validator_for(schema)
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise GuardrailConfigError(f"json_schema: the schema is invalid ({exc.message})") from None
        self.validator = validator_class(schema)

    async def check(self, text: str, context: GuardContext) -> Verdict:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return Verdict(False, f"the text is not valid JSON ({exc})")
        error = self._best_match(self.validator.iter_errors(value))
        if error is None:
            return PASSED
        where = "/".join(str(p) for p in error.absolute_path) or "the root"
        return Verdict(False, f"the JSON does not match the schema at {where}: {error.message}")
