"""Selection tasks: "pick k of these candidate ids", answered as schema-constrained JSON.

Servers that honour ``response_format`` json_schema cannot produce an id outside the ``enum``;
every answer is validated anyway, because other servers ignore the schema. An invalid answer is
retried (with a short note on what was wrong) a bounded number of times and then returned as a
failure with its raw text, so one bad answer never ends a run. Only valid answers are cached: a
rerun asks the failed requests again instead of replaying their failures.
"""

import json
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Optional, Sequence

from tqdm import tqdm

from recbole_llmaug.llm.chat import ChatClient, LLMCallError

SELECTION_FORMAT_VERSION = "selection-json-v1"
MAX_INVALID_RETRIES = 2


class InvalidAnswer(ValueError):
    """The model's text is not a valid selection; the message says why."""


@dataclass(frozen=True)
class SelectionRequest:
    messages: tuple  # the task prompt, as chat messages
    candidate_ids: tuple
    k: int = 1


@dataclass
class SelectionResult:
    ids: list
    raw: str
    valid: bool
    attempts: int
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: Optional[str] = None


def selection_schema(candidate_ids: Sequence[str], k: int) -> dict:
    """JSON schema of ``{"ids": [...]}`` with exactly ``k`` ids drawn from the candidates."""
    return {
        "type": "object",
        "properties": {
            "ids": {
                "type": "array",
                "items": {"type": "string", "enum": list(candidate_ids)},
                "minItems": k,
                "maxItems": k,
            }
        },
        "required": ["ids"],
        "additionalProperties": False,
    }


def response_format(candidate_ids: Sequence[str], k: int) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {"name": "selection", "strict": True, "schema": selection_schema(candidate_ids, k)},
    }


def format_instruction(candidate_ids: Sequence[str], k: int) -> str:
    noun = "id" if k == 1 else "ids"
    return (
        f'Answer with JSON only, in the form {{"ids": [...]}}, listing exactly {k} distinct {noun} '
        f"chosen from these candidates: {', '.join(candidate_ids)}."
    )


def _parsed_json(text: str):
    """The first JSON object or list in ``text``, tolerating code fences and chatter around it."""
    cleaned = re.sub(r"```(?:json)?", "", text).strip()
    decoder = json.JSONDecoder()
    for start, char in enumerate(cleaned):
        if char in "{[":
            try:
                value, _ = decoder.raw_decode(cleaned[start:])
                return value
            except json.JSONDecodeError:
                continue
    return None


def parse_selection(text: str, candidate_ids: Sequence[str], k: int) -> list:
    """The selected ids, or :class:`InvalidAnswer` naming the problem."""
    value = _parsed_json(text)
    if isinstance(value, dict):
        value = value.get("ids", value.get("id"))
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list):
        raise InvalidAnswer('the answer has no JSON {"ids": [...]} list')
    chosen = []
    for item in value:
        item = str(item).strip()
        if item not in chosen:
            chosen.append(item)
    allowed = set(candidate_ids)
    outside = [item for item in chosen if item not in allowed]
    if outside:
        raise InvalidAnswer(f"ids {outside} are not among the candidates")
    if len(chosen) < k:
        raise InvalidAnswer(f"{len(chosen)} distinct id(s) given, {k} required")
    return chosen[:k]


def _valid_for(candidate_ids: Sequence[str], k: int):
    """``accept`` for :meth:`ChatClient.complete`: cache only answers that parse as a valid selection."""
    def accept(text: str) -> bool:
        try:
            parse_selection(text, candidate_ids, k)
        except InvalidAnswer:
            return False
        return True
    return accept


def select(client: ChatClient, messages: Sequence[dict], candidate_ids: Sequence, k: int,
           prompt_version: str, max_invalid_retries: int = MAX_INVALID_RETRIES) -> SelectionResult:
    """Ask the model to pick ``k`` of ``candidate_ids``; always returns, valid or not."""
    candidates = [str(candidate) for candidate in candidate_ids]
    if not candidates or k < 1:
        raise ValueError(f"a selection needs candidates and k >= 1 (got {len(candidates)} candidates, k={k})")
    k = min(k, len(candidates))
    conversation = first = list(messages) + [{"role": "user", "content": format_instruction(candidates, k)}]
    version = f"{prompt_version}|{SELECTION_FORMAT_VERSION}"
    schema, accept = response_format(candidates, k), _valid_for(candidates, k)
    result = SelectionResult(ids=[], raw="", valid=False, attempts=0, cached=True)
    for _ in range(max_invalid_retries + 1):
        result.attempts += 1
        try:
            answer = client.complete(conversation, version, schema, accept)
        except LLMCallError as error:
            result.error, result.cached = str(error), False
            break
        result.raw = answer.text
        result.cached = result.cached and answer.cached
        result.prompt_tokens += answer.prompt_tokens
        result.completion_tokens += answer.completion_tokens
        try:
            result.ids = parse_selection(answer.text, candidates, k)
        except InvalidAnswer as problem:
            result.error = f"invalid answer: {problem}"
            conversation = conversation + [
                {"role": "assistant", "content": answer.text},
                {"role": "user", "content": f"That answer is invalid: {problem}. {format_instruction(candidates, k)}"},
            ]
            continue
        result.valid, result.error = True, None
        if result.attempts > 1:  # a rerun finds the valid answer under the first request at once
            client.remember(first, version, schema, answer)
        return result
    client.stats.add(failures=1)
    return result


def run_many(client: ChatClient, requests: Sequence[SelectionRequest], prompt_version: str,
             desc: str = "LLM selections") -> list:
    """:func:`select` for every request with ``llm_concurrency`` in flight; results in request order.

    A failed request (transport fault or invalid answer after the retries) is a failed result, never
    an exception. What does raise (a refused key, an unknown model: every request would fail) cancels
    the requests not yet started; those in flight finish and their valid answers are cached.
    """
    results = [None] * len(requests)
    with ThreadPoolExecutor(max_workers=client.settings.concurrency) as pool, \
            tqdm(total=len(requests), desc=desc, unit="req", dynamic_ncols=True) as bar:
        futures = {
            pool.submit(select, client, request.messages, request.candidate_ids, request.k, prompt_version): index
            for index, request in enumerate(requests)
        }
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
                bar.set_postfix(client.stats.postfix(), refresh=False)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results

