"""LLMRec (Wei et al., WSDM 2024): an LLM-augmented interaction graph with profiles and attributes.

CONTRACT SKELETON (to be filled by the augmentor work; the declarations, names, suffixes, headers and
loaders below are the interface the ``LLMRec`` model's dataset relies on):

* ``llmrec_candidates`` (``.lrcand``, ``uid:token candidates:token_seq``): a base general recommender
  (``llmrec_base_model``, RecBole LightGCN by default) trained on RecBole's own training split gives
  each user its top ``llmrec_candidates`` items outside its training items.
* ``llmrec_edges`` (``.lredge``, ``uid:token pos:token neg:token``): one LLM call per user picks, among
  its candidates (schema constrained), one item it would like and one it would not: one augmented
  BPR triple per user whose answer is valid.
* ``llmrec_item_attributes`` (``.itemattr``, ``iid:token attr_emb:float_seq``): one LLM call per item
  for a JSON object of attributes the catalogue lacks, encoded with the embedding model; the objects
  themselves in ``.itemattr.jsonl``.
* ``llmrec_user_profiles`` (``.userprof``, ``uid:token profile_emb:float_seq``): one LLM call per
  user, from its training history only, for a JSON profile, encoded; the objects in ``.userprof.jsonl``.
* ``llmrec_inter`` (``.llmrec_train.inter`` with ``.llmrec_valid.inter`` / ``.llmrec_test.inter``
  beside it): RecBole's training interactions plus the augmented positive edges, and RecBole's own
  validation/test interactions, so that any RecBole general model trains on the augmented data with
  ``benchmark_filename: [llmrec_train, llmrec_valid, llmrec_test]``.
"""

from pathlib import Path

from recbole_llmaug.augment.atomic import read_atomic
from recbole_llmaug.augment.outputs import Output, System
from recbole_llmaug.augment.text_embeddings import load_embedding_table
from recbole_llmaug.options import Option  # noqa: F401  (AUGMENT_OPTIONS are Option declarations)

# The augmentation options (stage="augment"), declared here and added to ``LLMRec.OPTIONS`` by the model.
AUGMENT_OPTIONS = ()

EDGES_HEADER = ("uid:token", "pos:token", "neg:token")


def _not_built_yet(*_args, **_kwargs):
    raise NotImplementedError("the LLMRec augmentor is not written yet")


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
    fingerprint=_not_built_yet, build=_not_built_yet, load=lambda path, dataset: read_atomic(path),
    doc="LLMRec: the base recommender's candidates per user (training items excluded)",
)
EDGES = Output(
    name="llmrec_edges", suffix="lredge", header=EDGES_HEADER,
    fingerprint=_not_built_yet, build=_not_built_yet, load=load_triples, depends_on=("llmrec_candidates",),
    doc="LLMRec: one LLM-sampled BPR triple (user, liked, disliked) per user, from its candidates",
)
ITEM_ATTRIBUTES = Output(
    name="llmrec_item_attributes", suffix="itemattr", header=("iid:token", "attr_emb:float_seq"),
    fingerprint=_not_built_yet, build=_not_built_yet, load=load_item_attributes,
    doc="LLMRec: the embedding of each item's LLM-generated attributes",
)
USER_PROFILES = Output(
    name="llmrec_user_profiles", suffix="userprof", header=("uid:token", "profile_emb:float_seq"),
    fingerprint=_not_built_yet, build=_not_built_yet, load=load_user_profiles,
    doc="LLMRec: the embedding of each user's LLM-generated profile (training history only)",
)
AUGMENTED_INTER = Output(
    name="llmrec_inter", suffix="llmrec_train.inter", header=("uid:token", "iid:token"),
    fingerprint=_not_built_yet, build=_not_built_yet, load=lambda path, dataset: read_atomic(path),
    depends_on=("llmrec_edges",),
    doc="LLMRec: training interactions plus the augmented edges (and the valid/test files), for any general model",
)
OUTPUTS = (CANDIDATES, EDGES, ITEM_ATTRIBUTES, USER_PROFILES, AUGMENTED_INTER)
SYSTEM = System(
    name="llmrec", outputs=(EDGES.name, ITEM_ATTRIBUTES.name, USER_PROFILES.name, AUGMENTED_INTER.name),
    split="general", model="LLMRec",
    doc="LLMRec: LLM-sampled BPR edges, item attributes and user profiles, and the augmented interaction file",
)
