"""LLMRec (Wei et al., WSDM 2024): an LLM-augmented interaction graph with user profiles and item attributes.

Everything is computed from RecBole's own split of the data (``eval_args``; LLMRec's protocol is the
general random 8:1:1 per user), obtained from RecBole itself under ``split_seed``
(:mod:`recbole_llmaug.augment.recbole_split`), and from each user's *training* items only: no
validation or test item reaches the base model, a prompt or a candidate list. The official code ships
the LLM's answers but not the candidate generation; here it is a base recommender, as the paper describes.

Outputs (the names, suffixes, headers and loaders are the interface of the ``LLMRec`` model's dataset):

* ``llmrec_candidates`` (``.lrcand``, ``uid:token candidates:token_seq``): a RecBole general model
  (``llmrec_base_model``, LightGCN by default; ``llmrec_base_epochs`` epochs on every training
  interaction, seeded with the split seed so that every model seed shares it) gives each user its top
  ``llmrec_candidates`` items outside its training items, best first.
* ``llmrec_edges`` (``.lredge``, ``uid:token pos:token neg:token``): one LLM call per user: its training
  titles and its candidates labelled A, B, ...; the answer ``{"liked": label, "disliked": label}`` is
  constrained by a JSON schema (each an ``enum`` of the labels) and must name two different candidates.
  One augmented BPR triple per user whose answer is valid (after the retries); a user without a valid
  answer gets no triple and is listed in the manifest's failures.
* ``llmrec_item_attributes`` (``.itemattr``, ``iid:token attr_emb:float_seq``; the objects in
  ``.itemattr.jsonl``): one call per item with a title, for a JSON object of the attributes the
  catalogue lacks (``item_attribute_fields``, per dataset: ml-100k director, country, language; Beauty
  product type, skin type, hair type, scent, key ingredient), each a short string under the schema; a field
  that fails validation is missing, never invented. The valid fields, rendered as ``Field: value``
  text, are embedded (cached); an item with none gets no row.
* ``llmrec_user_profiles`` (``.userprof``, ``uid:token profile_emb:float_seq``; the objects in
  ``.userprof.jsonl``): one call per user from the titles of its training items (the most recent
  ``user_text_max_items``), for ``{age_range, gender, liked_categories, disliked_categories}`` (enums for
  the first two; lists of short strings), rendered and embedded like the attributes.
* ``llmrec_inter`` (``.llmrec_train.inter``, and ``.llmrec_valid.inter`` / ``.llmrec_test.inter`` beside
  it): RecBole's training interactions plus the augmented ``(user, pos)`` edges, and RecBole's own
  validation and test interactions, with the interaction columns RecBole loads (``load_col``; an
  augmented edge leaves the columns other than user and item empty), so that any RecBole general model
  trains on the augmented data with ``benchmark_filename: [llmrec_train, llmrec_valid, llmrec_test]``.
  When the outputs go to ``augment_path``, the dataset's own atomic files are linked (copied where links
  are not possible) beside them, so ``--data_path=<augment_path>`` finds ``.item``/``.user`` too.

Freshness: every output's fingerprint holds the input file hashes, the canonical split settings (with the
split seed), the model names, the prompt version and the options it uses; a rerun reuses the files
(no model call, no retraining of the base model) when nothing changed, and the LLM and embedding caches
make a rebuild repeat no answered call.
"""

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Dict, List, Optional

from recbole_llmaug.augment.atomic import read_atomic, read_token_lists, sha256_file, write_atomic, write_text_atomic
from recbole_llmaug.augment.files import DatasetFiles, examples
from recbole_llmaug.augment.outputs import Output, System
from recbole_llmaug.augment.recbole_split import RecBoleSplit, recbole_split, split_settings
from recbole_llmaug.augment.text_embeddings import (
    _embedding_fingerprint,
    _write_text_embeddings,
    item_titles,
    load_embedding_table,
)
from recbole_llmaug.defaults import properties_dir, setting
from recbole_llmaug.errors import UserError
from recbole_llmaug.llm.settings import LLMSettings, title_max_chars
from recbole_llmaug.options import Option

logger = logging.getLogger(__name__)

# The augmentation options (stage="augment"), declared here and added to ``LLMRec.OPTIONS`` by the model;
# defaults in properties/model/LLMRec.yaml. ``item_attribute_fields`` is a dataset property (common option).
AUGMENT_OPTIONS = (
    Option("llmrec_base_model", "str", stage="augment",
           doc="RecBole general model that proposes the candidates (trained on the training split)"),
    Option("llmrec_base_epochs", "int", minimum=1, stage="augment", doc="epochs of the base model"),
    Option("llmrec_candidates", "int", minimum=2, maximum=26, stage="augment",
           doc="candidates per user (|C|) among which the LLM picks a liked and a disliked item"),
    Option("llmrec_attribute_max_chars", "int", minimum=1, stage="augment",
           doc="longest value of a generated attribute or profile entry (schema maxLength)"),
)

CANDIDATES_VERSION = "llmrec-candidates-v1"
EDGES_PROMPT_VERSION = "llmrec-edges-v1"
ATTRIBUTES_PROMPT_VERSION = "llmrec-attributes-v1"
PROFILES_PROMPT_VERSION = "llmrec-profiles-v1"
INTER_VERSION = "llmrec-inter-v1"
EDGES_HEADER = ("uid:token", "pos:token", "neg:token")
BENCHMARK_PARTS = ("llmrec_train", "llmrec_valid", "llmrec_test")
AGE_RANGES = ("under 18", "18-24", "25-34", "35-44", "45-54", "55 or older")
GENDERS = ("female", "male")
PROFILE_LIST_ITEMS = 5  # liked / disliked categories at most

EDGES_INSTRUCTION = (
    "You are a recommender system. You are given the items a user interacted with and a list of candidate "
    "items, each with a label. Pick the candidate the user would like most and the candidate the user "
    "would like least; they must be two different candidates."
)
ATTRIBUTES_INSTRUCTION = (
    "You know a lot about products and movies. Given an item, give the requested attributes of it. "
    "Use a few words per attribute; leave out an attribute you do not know."
)
PROFILES_INSTRUCTION = (
    "You are a recommender system. Given the items a user interacted with, describe the user: "
    "the likely age range and gender, and the genres or categories the user likes and dislikes."
)


# ---------------------------------------------------------------- shared pieces

def _base_model(files: DatasetFiles) -> str:
    return str(setting(files.settings, "llmrec_base_model"))


def _split_fingerprint(files: DatasetFiles) -> dict:
    return {"inputs": files.input_hashes("inter", "item", "user"), "split": split_settings(files, _base_model(files))}


def the_split(files: DatasetFiles) -> RecBoleSplit:
    """RecBole's split of the dataset, as the base model draws it (memoised in ``recbole_split``)."""
    return recbole_split(files, _base_model(files))


def train_histories(files: DatasetFiles) -> Dict[str, List[str]]:
    """Each user's training items under RecBole's split (raw ids; users with none left out)."""
    return {user: parts.train for user, parts in the_split(files).users.items() if parts.train}


def _history_titles(history: List[str], titles: Dict[str, str], files: DatasetFiles) -> str:
    from recbole_llmaug.llm.prompts import compact_title

    limit = int(setting(files.settings, "user_text_max_items"))
    named = [titles[item] for item in history if item in titles]
    named = named[-limit:] if limit > 0 else named
    chars = title_max_chars(files.settings)
    return "\n".join(f"- {compact_title(title, chars)}" for title in named) or "(no titled item)"


def _run_json(files: DatasetFiles, requests: list, version: str, desc: str, output: Path):
    """Results of ``requests`` (``JsonRequest``s) and the usage for the manifest; over Ray with ``ray_address``."""
    from recbole_llmaug.llm.chat import CallStats, open_chat_client
    from recbole_llmaug.llm.structured import run_many_json

    if not requests:
        return [], {"calls": 0, "cost": 0.0}
    if setting(files.settings, "ray_address"):
        from recbole_llmaug.llm.sharding import run_many_json_sharded, shard_folder

        stats = CallStats()
        results = run_many_json_sharded(requests, files.settings, version, shard_folder(output), desc=desc, stats=stats)
        return results, dict(stats.as_dict(), model=LLMSettings.from_settings(files.settings).model)
    with open_chat_client(files.settings) as client:
        results = run_many_json(client, requests, version, desc=desc)
        return results, dict(client.stats.as_dict(), model=client.model)


def _schema(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _render(value: dict, labels: Dict[str, str]) -> str:
    """``Label: value. Label: a, b.`` of the fields present, in schema order (the text that is embedded)."""
    parts = []
    for name, label in labels.items():
        if name in value:
            entry = value[name]
            text = ", ".join(str(part) for part in entry) if isinstance(entry, list) else str(entry)
            if text.strip():
                parts.append(f"{label}: {text.strip()}")
    return ". ".join(parts)


def _write_objects(output: Path, key: str, ids: List[str], results, texts: Dict[str, str]) -> Path:
    """The generated objects, one JSON line per id (``valid``, ``value``, ``missing``, ``problems``, the text embedded)."""
    path = output.with_name(output.name + ".jsonl")
    lines = [json.dumps({key: who, "valid": result.valid, "value": result.value, "missing": result.missing,
                         "problems": result.problems, "text": texts.get(who, ""), "error": result.error},
                        ensure_ascii=False, sort_keys=True) for who, result in zip(ids, results)]
    write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def _objects_output(files: DatasetFiles, output: Path, key: str, header, ids, requests, labels, version, desc) -> dict:
    """Ask for one object per id, embed the rendered valid fields, write the table and the ``.jsonl``;
    the manifest body."""
    results, usage = _run_json(files, requests, version, desc, output)
    texts = {who: _render(result.value, labels) for who, result in zip(ids, results) if result.valid}
    texts = {who: text for who, text in texts.items() if text}
    if not texts:
        raise UserError(f"No {key} got a single valid field from the LLM ({len(ids)} asked), so {output.name} would "
                        "be empty. Point llm_base_url/llm_model at a model that follows the instructions.")
    _, rows, embedding, embed_usage, _ = _write_text_embeddings(texts, header, output, files.settings, desc)
    jsonl = _write_objects(output, key, ids, results, texts)
    failed = [who for who, result in zip(ids, results) if not result.valid]
    empty = [who for who, result in zip(ids, results) if result.valid and who not in texts]
    missing_per_field = {name: sum(name in result.missing for result in results if result.valid) for name in labels}
    return {
        "usage": usage, "embedding": embedding, "embedding_usage": embed_usage,
        "counts": {"rows": rows, "asked": len(ids), "failures": len(failed), "without_any_valid_field": len(empty),
                   "missing_per_field": missing_per_field},
        "failures": {"invalid_answer_examples": examples(failed), "without_any_valid_field_examples": examples(empty)},
        "objects": {"file": jsonl.name, "sha256": sha256_file(jsonl)},
        "example_text": next(iter(texts.values()), ""),
    }


# ---------------------------------------------------------------- candidates

def _base_yaml(model: str) -> dict:
    from recbole_llmaug.compat import recbole_model_properties

    found = {}
    for path in (recbole_model_properties(model), properties_dir() / "model" / f"{model}.yaml"):
        if path is not None and Path(path).is_file():
            found[Path(path).parent.parent.parent.name + "/" + Path(path).name] = Path(path).read_text(encoding="utf-8")
    return found


def candidates_fingerprint(files: DatasetFiles) -> dict:
    model = _base_model(files)
    return dict(_split_fingerprint(files), version=CANDIDATES_VERSION, base_model=model, base_yaml=_base_yaml(model),
                base_epochs=int(setting(files.settings, "llmrec_base_epochs")),
                candidates=int(setting(files.settings, "llmrec_candidates")))


def build_candidates(files: DatasetFiles, output: Path) -> dict:
    from recbole_llmaug.augment.collaborative import train_general_ranker
    from recbole_llmaug.augment.recbole_split import split_seed

    histories = train_histories(files)
    model, epochs = _base_model(files), int(setting(files.settings, "llmrec_base_epochs"))
    ranker = train_general_ranker(histories, files.output_folder / f".{files.name}.llmrec_work", "base",
                                  files.settings, model, epochs, split_seed(files.settings))
    count = int(setting(files.settings, "llmrec_candidates"))
    users = sorted(histories)
    ranked = ranker.top_k(users, count, exclude={user: set(items) for user, items in histories.items()})
    rows = write_atomic(output, CANDIDATES.header, ((user, " ".join(ranked.get(user, []))) for user in users))
    short = [user for user in users if len(ranked.get(user, [])) < count]
    return {"counts": {"rows": rows, "users": len(users), "candidates_per_user": count,
                       "users_with_fewer_candidates": len(short)},
            "failures": {"users_with_fewer_candidates_examples": examples(short)},
            "model": f"RecBole {model}, {epochs} epochs on RecBole's training split"}


# ---------------------------------------------------------------- augmented BPR triples

def edges_fingerprint(files: DatasetFiles) -> dict:
    return dict(_split_fingerprint(files), version=EDGES_PROMPT_VERSION,
                candidates=files.output_hashes(CANDIDATES.suffix), llm=LLMSettings.fingerprint_of(files.settings),
                item_title_field=setting(files.settings, "item_title_field"),
                title_chars=title_max_chars(files.settings),
                history_items=int(setting(files.settings, "user_text_max_items")))


def two_different(value: dict) -> Optional[str]:
    """The cross-field rule of an edge answer: a liked and a disliked candidate, not the same one."""
    if "liked" not in value or "disliked" not in value:
        return "both 'liked' and 'disliked' must name a candidate label"
    if value["liked"] == value["disliked"]:
        return "'liked' and 'disliked' must be two different candidates"
    return None


def edge_request(history: List[str], candidates: List[str], titles: Dict[str, str], files: DatasetFiles):
    """One user's prompt (shared instruction first, then the training titles and the labelled candidates)
    and its schema: ``liked`` and ``disliked`` each one of the candidates' labels."""
    from recbole_llmaug.llm.prompts import candidate_labels, compact_title
    from recbole_llmaug.llm.structured import JsonRequest

    labels = candidate_labels(len(candidates), "letters")
    chars = title_max_chars(files.settings)
    listing = "\n".join(f"{label}: {compact_title(titles.get(item, item), chars)}" for label, item in zip(labels, candidates))
    messages = ({"role": "system", "content": EDGES_INSTRUCTION},
                {"role": "user", "content": f"Interacted with:\n{_history_titles(history, titles, files)}"
                                            f"\n\nCandidates:\n{listing}"})
    pick = {"type": "string", "enum": labels}
    schema = dict(_schema({"liked": pick, "disliked": pick}), required=["liked", "disliked"])
    return JsonRequest(messages, schema, name="edge", check=two_different), labels


def build_edges(files: DatasetFiles, output: Path) -> dict:
    histories = train_histories(files)
    candidates = read_token_lists(files.output_path(CANDIDATES.suffix))
    titles = item_titles(files, "LLMRec prompts")
    users = [user for user in sorted(candidates) if len(candidates[user]) >= 2 and user in histories]
    asked = [edge_request(histories[user], candidates[user], titles, files) for user in users]
    results, usage = _run_json(files, [request for request, _ in asked], EDGES_PROMPT_VERSION, "LLMRec edges", output)
    triples, failed = [], []
    for user, (_, labels), result in zip(users, asked, results):
        if not result.valid:  # valid answers passed two_different (the request's check)
            failed.append(user)
            continue
        to_item = dict(zip(labels, candidates[user]))
        triples.append((user, to_item[result.value["liked"]], to_item[result.value["disliked"]]))
    rows = write_atomic(output, EDGES_HEADER, triples)
    split = the_split(files).users
    held_out = [user for user, pos, _ in triples if pos in split[user].valid or pos in split[user].test]
    return {"usage": usage, "prompt_version": EDGES_PROMPT_VERSION,
            "counts": {"rows": rows, "users": len(users), "failures": len(failed),
                       # reported only (never used to build): such an edge is in training, so a RecBole
                       # model masks that item in the user's evaluation (a miss, not a gain)
                       "pos_is_a_valid_or_test_item_of_the_user": len(held_out)},
            "failures": {"users_without_a_valid_answer_examples": examples(failed)},
            "model": usage.get("model")}


# ---------------------------------------------------------------- item attributes

def _attribute_fields(files: DatasetFiles) -> List[str]:
    fields = list(setting(files.settings, "item_attribute_fields") or [])
    if not fields or not all(isinstance(name, str) and name.isidentifier() for name in fields):
        raise UserError(f"item_attribute_fields must be a non-empty list of names like [director, country], got "
                        f"{fields!r}. Set it in properties/dataset/<dataset>.yaml or with --item_attribute_fields=[...].")
    return fields


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def attributes_fingerprint(files: DatasetFiles) -> dict:
    return {"inputs": files.input_hashes("inter", "item"), "version": ATTRIBUTES_PROMPT_VERSION,
            "fields": _attribute_fields(files), "max_chars": int(setting(files.settings, "llmrec_attribute_max_chars")),
            "item_title_field": setting(files.settings, "item_title_field"),
            "item_text_template": setting(files.settings, "item_text_template"),
            "llm": LLMSettings.fingerprint_of(files.settings), "embedding": _embedding_fingerprint(files.settings)}


def attribute_request(text: str, fields: List[str], max_chars: int):
    from recbole_llmaug.llm.structured import JsonRequest

    value = {"type": "string", "minLength": 1, "maxLength": max_chars}
    messages = ({"role": "system", "content": ATTRIBUTES_INSTRUCTION},
                {"role": "user", "content": f"Item: {text}\nAttributes: {', '.join(fields)}"})
    return JsonRequest(messages, _schema({name: value for name in fields}), name="attributes")


def build_attributes(files: DatasetFiles, output: Path) -> dict:
    from recbole_llmaug.augment.text_embeddings import item_texts

    fields, max_chars = _attribute_fields(files), int(setting(files.settings, "llmrec_attribute_max_chars"))
    known = {item: text for item, text in item_texts(files).items() if text}  # what the catalogue says
    items = sorted(known)
    requests = [attribute_request(known[item], fields, max_chars) for item in items]
    report = _objects_output(files, output, "item", ITEM_ATTRIBUTES.header, items, requests,
                             {name: _label(name) for name in fields}, ATTRIBUTES_PROMPT_VERSION, "LLMRec attributes")
    report["counts"]["items_without_text"] = int(files.inter.frame[files.iid].nunique()) - len(
        set(files.inter.frame[files.iid]) & set(known))
    report["fields"] = fields
    return report


# ---------------------------------------------------------------- user profiles

PROFILE_LABELS = {"age_range": "Age", "gender": "Gender", "liked_categories": "Likes",
                  "disliked_categories": "Dislikes"}


def profiles_fingerprint(files: DatasetFiles) -> dict:
    return dict(_split_fingerprint(files), version=PROFILES_PROMPT_VERSION,
                max_chars=int(setting(files.settings, "llmrec_attribute_max_chars")),
                item_title_field=setting(files.settings, "item_title_field"),
                title_chars=title_max_chars(files.settings),
                history_items=int(setting(files.settings, "user_text_max_items")),
                llm=LLMSettings.fingerprint_of(files.settings), embedding=_embedding_fingerprint(files.settings))


def profile_request(history: List[str], titles: Dict[str, str], files: DatasetFiles):
    from recbole_llmaug.llm.structured import JsonRequest

    entry = {"type": "string", "minLength": 1, "maxLength": int(setting(files.settings, "llmrec_attribute_max_chars"))}
    listed = {"type": "array", "items": entry, "minItems": 1, "maxItems": PROFILE_LIST_ITEMS, "uniqueItems": True}
    schema = _schema({"age_range": {"type": "string", "enum": list(AGE_RANGES)},
                      "gender": {"type": "string", "enum": list(GENDERS)},
                      "liked_categories": listed, "disliked_categories": listed})
    messages = ({"role": "system", "content": PROFILES_INSTRUCTION},
                {"role": "user", "content": f"Interacted with:\n{_history_titles(history, titles, files)}"})
    return JsonRequest(messages, schema, name="profile")


def build_profiles(files: DatasetFiles, output: Path) -> dict:
    histories, titles = train_histories(files), item_titles(files, "LLMRec prompts")
    users = sorted(user for user, items in histories.items() if any(item in titles for item in items))
    requests = [profile_request(histories[user], titles, files) for user in users]
    report = _objects_output(files, output, "user", USER_PROFILES.header, users, requests, PROFILE_LABELS,
                             PROFILES_PROMPT_VERSION, "LLMRec profiles")
    report["counts"]["users_without_titled_training_item"] = len(histories) - len(users)
    return report


# ---------------------------------------------------------------- augmented interaction files

def inter_fingerprint(files: DatasetFiles) -> dict:
    return dict(_split_fingerprint(files), version=INTER_VERSION, edges=files.output_hashes(EDGES.suffix))


def _link_inputs(files: DatasetFiles) -> List[str]:
    """With ``augment_path``: the dataset's own atomic files beside the outputs (a link, else a copy), so that
    ``--data_path=<augment_path>`` finds ``.item``/``.user`` (and ``.inter``, which the run's checks want)."""
    if files.output_folder.resolve() == files.folder.resolve():
        return []
    linked = []
    for path in sorted(files.folder.glob(f"{files.name}.*")):
        suffix = path.name[len(files.name) + 1:]
        if suffix not in ("inter", "item", "user", "kg", "link", "net") or not path.is_file():
            continue
        target = files.output_folder / path.name
        if target.exists() and sha256_file(target) == sha256_file(path):
            linked.append(path.name)
            continue
        if target.is_symlink() or target.exists():
            target.unlink()
        try:
            os.symlink(path.resolve(), target)
        except OSError:
            shutil.copyfile(path, target)
        linked.append(path.name)
    return linked


def build_inter(files: DatasetFiles, output: Path) -> dict:
    split = the_split(files)
    user_at, item_at = split.header.index(f"{split.uid}:token"), split.header.index(f"{split.iid}:token")
    edges = read_atomic(files.output_path(EDGES.suffix))
    user_field, pos_field = list(edges.types)[:2]
    added = []
    for user, pos in zip(edges.frame[user_field], edges.frame[pos_field]):
        row = [""] * len(split.header)
        row[user_at], row[item_at] = user, pos
        added.append(tuple(row))
    train_rows = write_atomic(output, split.header, list(split.parts[0]) + added)
    counts = {"rows": train_rows, "training_interactions": len(split.parts[0]), "augmented_edges": len(added)}
    for name, rows in zip(BENCHMARK_PARTS[1:], split.parts[1:]):
        counts[name] = write_atomic(files.output_path(f"{name}.inter"), split.header, rows)
    return {"counts": counts, "header": list(split.header), "benchmark_filename": list(BENCHMARK_PARTS),
            "linked_inputs": _link_inputs(files),
            "valid_test": {name: sha256_file(files.output_path(f"{name}.inter")) for name in BENCHMARK_PARTS[1:]}}


# ---------------------------------------------------------------- loading into LLMRec's dataset

def load_triples(path: Path, dataset):
    """``[n, 3]`` long tensor of (user, positive, negative) internal ids; rows naming a user or item the
    dataset does not know are skipped."""
    import torch

    table = read_atomic(path)
    user_field, pos_field, neg_field = list(table.types)[:3]
    users, items = dataset.field2token_id[dataset.uid_field], dataset.field2token_id[dataset.iid_field]
    rows = [(users[u], items[p], items[n]) for u, p, n in zip(table.frame[user_field], table.frame[pos_field],
                                                              table.frame[neg_field])
            if u in users and p in items and n in items]
    return torch.as_tensor(rows, dtype=torch.long).reshape(-1, 3)


def load_item_attributes(path: Path, dataset):
    """``(table [n_items, dim], items missing from the file)`` in RecBole's internal item ids."""
    return load_embedding_table(path, dataset, dataset.iid_field, dataset.item_num)


def load_user_profiles(path: Path, dataset):
    """``(table [n_users, dim], users missing from the file)`` in RecBole's internal user ids."""
    return load_embedding_table(path, dataset, dataset.uid_field, dataset.user_num)


CANDIDATES = Output(
    name="llmrec_candidates", suffix="lrcand", header=("uid:token", "candidates:token_seq"),
    fingerprint=candidates_fingerprint, build=build_candidates, load=lambda path, dataset: read_atomic(path),
    doc="LLMRec: the base recommender's candidates per user (training items excluded)",
)
EDGES = Output(
    name="llmrec_edges", suffix="lredge", header=EDGES_HEADER,
    fingerprint=edges_fingerprint, build=build_edges, load=load_triples, depends_on=("llmrec_candidates",),
    doc="LLMRec: one LLM-sampled BPR triple (user, liked, disliked) per user, from its candidates",
)
ITEM_ATTRIBUTES = Output(
    name="llmrec_item_attributes", suffix="itemattr", header=("iid:token", "attr_emb:float_seq"),
    fingerprint=attributes_fingerprint, build=build_attributes, load=load_item_attributes,
    doc="LLMRec: the embedding of each item's LLM-generated attributes",
)
USER_PROFILES = Output(
    name="llmrec_user_profiles", suffix="userprof", header=("uid:token", "profile_emb:float_seq"),
    fingerprint=profiles_fingerprint, build=build_profiles, load=load_user_profiles,
    doc="LLMRec: the embedding of each user's LLM-generated profile (training history only)",
)
AUGMENTED_INTER = Output(
    name="llmrec_inter", suffix="llmrec_train.inter", header=("uid:token", "iid:token"),
    fingerprint=inter_fingerprint, build=build_inter, load=lambda path, dataset: read_atomic(path),
    depends_on=("llmrec_edges",),
    doc="LLMRec: training interactions plus the augmented edges (and the valid/test files), for any general model; "
        "its real header is the dataset's loaded interaction columns",
)
OUTPUTS = (CANDIDATES, EDGES, ITEM_ATTRIBUTES, USER_PROFILES, AUGMENTED_INTER)
SYSTEM = System(
    name="llmrec", outputs=(EDGES.name, ITEM_ATTRIBUTES.name, USER_PROFILES.name, AUGMENTED_INTER.name),
    split="general", model="LLMRec",
    doc="LLMRec: LLM-sampled BPR edges, item attributes and user profiles, and the augmented interaction file",
)
