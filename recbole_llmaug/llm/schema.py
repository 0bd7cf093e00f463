"""What a JSON schema allows, for the two things the layer needs from it without a full validator run:
per-field validation of a generated object (a field that fails is dropped, never repaired), and the
most tokens an answer under the schema can take (``max_tokens`` of the request).

Validation uses ``jsonschema`` (Draft 2020-12) on each declared property on its own, so one bad field
does not cost the others.
"""

import json
from dataclasses import dataclass, field
from typing import Optional, Tuple

import jsonschema

# An answer under a schema is at most its longest compact JSON text plus the whitespace a server's
# grammar lets the model put around each separator (llama.cpp allows a newline and up to 20 blanks:
# up to ~4 tokens), plus a few for the end of the message. A byte is never less than one token.
WHITESPACE_TOKENS_PER_SEPARATOR = 4
END_TOKENS = 8
# Sizes of JSON scalars at their longest (int64 with sign; a double in exponent form).
LONGEST_SCALAR = {"integer": 20, "number": 24, "boolean": 5, "null": 4}
# A string character is at most 6 bytes in JSON (``\\u001f``), at most 4 in UTF-8.
BYTES_PER_STRING_CHAR = 6


def _json_bytes(value) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def json_bound(schema) -> Optional[Tuple[int, int]]:
    """(bytes, separators) of the longest compact JSON value ``schema`` allows; None when unbounded.

    Bounded means: strings have ``maxLength`` or an ``enum``/``const``, arrays ``maxItems``, objects
    ``additionalProperties: false``. Separators are the ``{ } [ ] , :`` outside strings, where a
    grammar may let the model add whitespace.
    """
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return _json_bytes(schema["const"]), 0
    if "enum" in schema:
        values = list(schema["enum"])
        return (max(_json_bytes(value) for value in values), 0) if values else None
    for key in ("anyOf", "oneOf"):
        if key in schema:
            bounds = [json_bound(option) for option in schema[key]]
            if not bounds or any(bound is None for bound in bounds):
                return None
            return max(bound[0] for bound in bounds), max(bound[1] for bound in bounds)
    kind = schema.get("type")
    if isinstance(kind, list):
        bounds = [json_bound(dict(schema, type=one)) for one in kind]
        if not bounds or any(bound is None for bound in bounds):
            return None
        return max(bound[0] for bound in bounds), max(bound[1] for bound in bounds)
    if kind in LONGEST_SCALAR:
        return LONGEST_SCALAR[kind], 0
    if kind == "string":
        if "maxLength" not in schema:
            return None
        return 2 + BYTES_PER_STRING_CHAR * int(schema["maxLength"]), 0
    if kind == "array":
        items = json_bound(schema.get("items", {}))
        if items is None or "maxItems" not in schema:
            return None
        count = int(schema["maxItems"])
        return 2 + count * items[0] + max(count - 1, 0), 2 + max(count - 1, 0) + count * items[1]
    if kind == "object":
        if schema.get("additionalProperties", True) is not False:
            return None
        properties = schema.get("properties", {})
        size, separators = 2, 2 + max(len(properties) - 1, 0)
        for name, subschema in properties.items():
            bound = json_bound(subschema)
            if bound is None:
                return None
            size += _json_bytes(name) + 1 + bound[0]
            separators += 1 + bound[1]
        return size + max(len(properties) - 1, 0), separators
    return None


def answer_token_bound(schema) -> Optional[int]:
    """The most tokens an answer under ``schema`` can take, or None when the schema does not bound it."""
    bound = json_bound(schema)
    if bound is None:
        return None
    size, separators = bound
    return size + WHITESPACE_TOKENS_PER_SEPARATOR * separators + END_TOKENS


@dataclass
class CheckedObject:
    """A generated object after per-field validation."""

    value: dict  # the declared fields that passed their schema, as given
    missing: list  # declared fields absent or failing their schema (never filled in)
    dropped: list  # fields the schema does not declare (removed)
    problems: dict = field(default_factory=dict)  # field -> why it failed


def check_object(value, schema: dict) -> Optional[CheckedObject]:
    """Validate ``value`` field by field against ``schema`` (an object schema); None when it is not an object.

    Each declared property is checked alone against its own subschema, so a bad field is recorded as
    missing and the others are kept; fields the schema does not declare are dropped; a field is never
    repaired or invented.
    """
    if not isinstance(value, dict):
        return None
    properties = schema.get("properties", {})
    kept, missing, problems = {}, [], {}
    for name, subschema in properties.items():
        if name not in value:
            missing.append(name)
            continue
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(subschema).iter_errors(value[name]))
        if error is not None:
            missing.append(name)
            problems[name] = error.message
            continue
        kept[name] = value[name]
    dropped = [name for name in value if name not in properties]
    return CheckedObject(kept, missing, dropped, problems)
