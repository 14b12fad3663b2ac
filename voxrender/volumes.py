"""STUB: being written. Replace this whole file."""

__all__ = ['Volumes']

Volumes = None  # stub
