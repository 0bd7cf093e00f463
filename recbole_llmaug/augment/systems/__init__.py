"""One module per system: its own outputs (``OUTPUTS``) and the group it needs (``SYSTEM``).
Every module here is registered by :func:`recbole_llmaug.augment.outputs.registry`."""
