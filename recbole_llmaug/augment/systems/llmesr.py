"""LLM-ESR (Liu et al., NeurIPS 2024): item text embeddings for the semantic view and the PCA
initialisation of the ID view, user text embeddings, and the similar users of retrieval-augmented
self-distillation. All three are the shared text-embedding outputs; LLM-ESR declares no output of its own."""

from recbole_llmaug.augment.outputs import System

OUTPUTS = ()
SYSTEM = System(
    name="llmesr",
    outputs=("item_emb", "user_emb", "sim_users"),
    split="sequential",
    model="LLMESR",
    doc="LLM-ESR: .itememb, .useremb, .simuser",
)
