"""Generated JSON objects (LLMRec's user profiles and item attributes), one schema per task.

The answer is asked for under ``response_format`` json_schema (servers that honour it can only write
an object of that shape), then validated field by field anyway, because other servers ignore schemas
and weak models fill fields badly:

* a declared field that is absent or fails its own subschema is recorded in ``missing`` and left out:
  a field is never invented or repaired;
* a field the schema does not declare is dropped (listed in ``dropped``);
* the answer as a whole is invalid only when it is not a JSON object: that is retried with a short
  note (``max_invalid_retries`` times) and then returned as a failure with its raw text.

Only valid answers (objects) are cached, so a rerun repeats no paid call and never replays a failure.
"""

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from recbole_llmaug.llm.chat import ChatClient, ask_until_valid
from recbole_llmaug.llm.schema import answer_token_bound, check_object
from recbole_llmaug.llm.selection import MAX_INVALID_RETRIES, _parsed_json, run_pool

JSON_FORMAT_VERSION = "object-json-v1"


@dataclass(frozen=True)
class JsonRequest:
    messages: tuple  # the task prompt, as chat messages
    schema: dict  # JSON schema of the object: {"type": "object", "properties": {...}, ...}
    name: str = "answer"  # the schema's name in response_format (letters, digits, _ and -)
    # a rule across fields that a schema cannot state (e.g. two fields must differ): value -> problem or None;
    # not in the repr (shard names hash the requests' reprs: a function's address differs per process)
    check: Optional[Callable[[dict], Optional[str]]] = field(default=None, repr=False, compare=False)


@dataclass
class JsonResult:
    value: dict  # the declared fields that passed their schema ({} when invalid)
    missing: list  # declared fields absent or failing their schema
    dropped: list  # undeclared fields removed from the answer
    raw: str
    valid: bool  # the answer was a JSON object
    attempts: int
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    problems: dict = field(default_factory=dict)  # field -> why it failed its schema
    error: Optional[str] = None


def json_response_format(schema: dict, name: str = "answer") -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": False, "schema": schema}}


def json_instruction(schema: dict) -> str:
    fields = ", ".join(schema.get("properties", {})) or "the requested fields"
    return f"Answer with one JSON object only, with the fields {fields}; leave out a field you cannot fill."


def _object_of(text: str):
    value = _parsed_json(text)
    return value if isinstance(value, dict) else None


def _problem(text: str, schema: dict, check) -> Optional[str]:
    """Why ``text`` is not an acceptable answer (not an object, or ``check`` fails on its valid fields); None if it is."""
    checked = check_object(_object_of(text), schema)
    if checked is None:
        return "not a JSON object"
    return check(checked.value) if check is not None else None


def generate_json(client: ChatClient, messages: Sequence[dict], schema: dict, prompt_version: str,
                  name: str = "answer", max_invalid_retries: int = MAX_INVALID_RETRIES,
                  check: Optional[Callable[[dict], Optional[str]]] = None) -> JsonResult:
    """Ask for one JSON object under ``schema``; always returns (``valid`` False when no object came back).

    ``messages`` end with the task; an instruction naming the fields is appended. ``max_tokens`` is the
    most the schema allows when it bounds every field (``maxLength``, ``maxItems``, enums), else
    ``llm_max_tokens``. ``prompt_version`` names the prompt: change it when the prompt changes.
    ``check(value)``: a rule across the valid fields (e.g. two picks must differ) returning the problem
    or None; an answer that breaks it is invalid like a non-object (retried, then a failure, never cached).
    """
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise ValueError('generate_json needs an object schema: {"type": "object", "properties": {...}}')
    fmt = json_response_format(schema, name)
    version = f"{prompt_version}|{JSON_FORMAT_VERSION}"
    bound = answer_token_bound(schema)
    instruction = json_instruction(schema)
    result = JsonResult(value={}, missing=list(schema["properties"]), dropped=[], raw="", valid=False,
                        attempts=0, cached=True)
    answer = ask_until_valid(client, list(messages) + [{"role": "user", "content": instruction}], version, fmt,
                             instruction, lambda text: _problem(text, schema, check), bound, max_invalid_retries,
                             result)
    if answer is not None:
        checked = check_object(_object_of(answer.text), schema)
        result.value, result.missing, result.dropped = checked.value, checked.missing, checked.dropped
        result.problems, result.valid = checked.problems, True
    return result


def run_many_json(client: ChatClient, requests: Sequence[JsonRequest], prompt_version: str,
                  desc: str = "LLM objects") -> list:
    """:func:`generate_json` for every request, ``llm_concurrency`` at a time, with a progress bar
    (calls, calls/s, cache hits, failures, tokens, cost); results in request order. A failed request is a
    failed result, never an exception (see :func:`~recbole_llmaug.llm.selection.run_many`)."""
    def one(request):
        return generate_json(client, request.messages, request.schema, prompt_version, request.name,
                             check=request.check)

    return run_pool(client, one, requests, desc)
