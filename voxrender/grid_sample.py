"""STUB: being written. Replace this whole file."""

__all__ = ['sample_grid']

sample_grid = None  # stub
