"""The dataset of LLMESRSeR (LLM-ESR trained on LLMSeR's augmented sequences): both systems' data, the
item text embeddings and similar users of ``LLMESRDataset`` and the pseudo-prior items and weights of
``LLMSeRDataset``, from the augmentor outputs of both."""

from recbole_llmaug.data.llmesr import LLMESRDataset
from recbole_llmaug.data.llmser import LLMSeRDataset


class LLMESRSeRDataset(LLMESRDataset, LLMSeRDataset):
    """``LLMESRDataset``'s and ``LLMSeRDataset``'s tensors, one dataset."""

    @classmethod
    def needed_outputs(cls, config) -> tuple:
        return LLMESRDataset.needed_outputs(config) + LLMSeRDataset.needed_outputs(config)
