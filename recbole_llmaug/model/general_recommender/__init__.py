"""Our general (non-sequential) recommenders, one model per file."""

__all__ = []
