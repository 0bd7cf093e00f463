"""Selection tasks: "pick k of these candidate ids", answered as schema-constrained JSON.

Servers that honour ``response_format`` json_schema cannot produce an id outside the ``enum``;
every answer is validated anyway, because other servers ignore the schema. An invalid answer is
retried (with a short note on what was wrong) a bounded number of times and then returned as a
failure with its raw text, so one bad answer never ends a run. Only valid answers are cached: a
rerun asks the failed requests again instead of replaying their failures.

Cheaper answers (README "The LLM stage at dataset scale"): a request may name its candidates by short
``labels`` ("A".."J") that are mapped back to the real ids; the answer's ``max_tokens`` is the most
its schema allows (``llm_selection_max_tokens: ~``), since k ids need a few tokens, not 256; and on
the embedded llama.cpp server ``llm_selection_format: labels`` asks for bare labels ("A,C") under a
grammar instead of pretty-printed JSON (about a third of the answer tokens).
"""

import json
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Optional, Sequence

from tqdm import tqdm

from recbole_llmaug.llm.chat import GRAMMAR_FORMAT, ChatClient, ask_until_valid, bar_postfix
from recbole_llmaug.llm.schema import END_TOKENS, answer_token_bound

SELECTION_FORMAT_VERSION = "selection-json-v1"
LABELS_FORMAT_VERSION = "selection-labels-v1"
MAX_INVALID_RETRIES = 2
LABEL_SEPARATOR = ","


class InvalidAnswer(ValueError):
    """The model's text is not a valid selection; the message says why."""


@dataclass(frozen=True)
class SelectionRequest:
    messages: tuple  # the task prompt, as chat messages
    candidate_ids: tuple
    k: int = 1
    labels: Optional[tuple] = None  # what the prompt calls the candidates (same order); None: their ids


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
    return _check(value, candidate_ids, k)


def _check(value: list, candidate_ids: Sequence[str], k: int) -> list:
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


def parse_labels(text: str, labels: Sequence[str], k: int) -> list:
    """The labels of a bare ``"A,C"`` answer (``llm_selection_format: labels``), or :class:`InvalidAnswer`."""
    value = [part.strip() for part in text.strip().split(LABEL_SEPARATOR) if part.strip()]
    if not value:
        raise InvalidAnswer("the answer names no candidate")
    return _check(value, labels, k)


def labels_grammar(labels: Sequence[str], k: int) -> str:
    """A llama.cpp GBNF grammar: exactly ``k`` labels separated by commas, nothing else (no whitespace)."""
    def literal(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return (f"root ::= label{(' ' + literal(LABEL_SEPARATOR) + ' label') * (k - 1)}\n"
            f"label ::= {' | '.join(literal(label) for label in labels)}\n")


def labels_usable(labels: Sequence[str]) -> bool:
    """Bare labels can be told apart only if none holds the separator, whitespace or a line break."""
    return all(label and LABEL_SEPARATOR not in label and not any(char.isspace() for char in label) for label in labels)


def _answer_plan(client: ChatClient, shown: Sequence[str], k: int):
    """(response_format, parse, instruction, version suffix, max_tokens of the first attempt) for this client."""
    configured = client.settings.selection_max_tokens
    if client.settings.selection_format == "labels" and client.llama_cpp and labels_usable(shown):
        longest = max(len(label.encode("utf-8")) for label in shown)
        bound = k * (longest + len(LABEL_SEPARATOR)) + END_TOKENS
        return ({"type": GRAMMAR_FORMAT, "grammar": labels_grammar(shown, k)},
                lambda text: parse_labels(text, shown, k), labels_instruction(shown, k), LABELS_FORMAT_VERSION,
                configured or bound)
    return (response_format(shown, k), lambda text: parse_selection(text, shown, k), format_instruction(shown, k),
            SELECTION_FORMAT_VERSION, configured or answer_token_bound(selection_schema(shown, k)))


def labels_instruction(labels: Sequence[str], k: int) -> str:
    noun = "label" if k == 1 else "labels"
    return (f"Answer with exactly {k} distinct candidate {noun} chosen from {', '.join(labels)}, "
            "separated by commas, and nothing else.")


def select(client: ChatClient, messages: Sequence[dict], candidate_ids: Sequence, k: int,
           prompt_version: str, max_invalid_retries: int = MAX_INVALID_RETRIES,
           labels: Optional[Sequence[str]] = None) -> SelectionResult:
    """Ask the model to pick ``k`` of ``candidate_ids``; always returns, valid or not.

    ``labels`` (one per candidate, in order): the names the prompt gives the candidates; the model
    answers with labels and the result holds the candidates' ids. The first attempt's answer is
    bounded by its schema (``llm_selection_max_tokens``); a correction round may use ``llm_max_tokens``,
    in case the bound cut a valid answer short.
    """
    candidates = [str(candidate) for candidate in candidate_ids]
    if not candidates or k < 1:
        raise ValueError(f"a selection needs candidates and k >= 1 (got {len(candidates)} candidates, k={k})")
    shown = candidates if labels is None else [str(label) for label in labels]
    if len(shown) != len(candidates) or len(set(shown)) != len(shown):
        raise ValueError(f"{len(shown)} labels for {len(candidates)} candidates, or labels that repeat: {shown}")
    to_id = dict(zip(shown, candidates))
    k = min(k, len(candidates))
    schema, parse, instruction, suffix, bound = _answer_plan(client, shown, k)
    version = f"{prompt_version}|{suffix}"

    def problem(text: str) -> Optional[str]:
        try:
            parse(text)
        except InvalidAnswer as invalid:
            return str(invalid)
        return None

    result = SelectionResult(ids=[], raw="", valid=False, attempts=0, cached=True)
    answer = ask_until_valid(client, list(messages) + [{"role": "user", "content": instruction}], version, schema,
                             instruction, problem, bound, max_invalid_retries, result)
    if answer is not None:
        result.ids, result.valid = [to_id[label] for label in parse(answer.text)], True
    return result


def run_many(client: ChatClient, requests: Sequence[SelectionRequest], prompt_version: str,
             desc: str = "LLM selections") -> list:
    """:func:`select` for every request with ``llm_concurrency`` in flight; results in request order.

    A failed request (transport fault or invalid answer after the retries) is a failed result, never
    an exception. What does raise (a refused key, an unknown model: every request would fail) cancels
    the requests not yet started; those in flight finish and their valid answers are cached.
    """
    def one(request):
        return select(client, request.messages, request.candidate_ids, request.k, prompt_version,
                      labels=request.labels)

    return run_pool(client, one, requests, desc)


def run_pool(client: ChatClient, task, requests: Sequence, desc: str) -> list:
    """``task(request)`` for every request, ``llm_concurrency`` at a time; results in request order.

    The bar counts requests (its rate includes cache hits) and shows this run's model calls, calls/s,
    cache hits, failures, tokens and cost.
    """
    results = [None] * len(requests)
    since = client.stats.as_dict()
    with ThreadPoolExecutor(max_workers=client.settings.concurrency) as pool, \
            tqdm(total=len(requests), desc=desc, unit="req", dynamic_ncols=True) as bar:
        futures = {pool.submit(task, request): index for index, request in enumerate(requests)}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
                bar.set_postfix(bar_postfix(bar, client.stats, since), refresh=False)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results

