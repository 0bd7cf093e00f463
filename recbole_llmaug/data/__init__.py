"""Data: dataset folders (:mod:`.folders`) and our RecBole ``Dataset`` classes.

A model ``<Model>`` that needs augmented data has a ``<Model>Dataset`` in ``recbole_llmaug.data.<model
lower>`` (found by :func:`recbole_llmaug.utils.create_dataset`, as RecBole-GNN finds its datasets). The
dataset loads the augmentor's outputs it needs (:class:`.augmented.AugmentedDataset`) and hands the
model tensors aligned with RecBole's internal ids; models never see file paths.
"""
