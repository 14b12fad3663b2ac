"""STUB: being written. Replace this whole file."""

__all__ = ['Rotate', 'Scale', 'Transform3d', 'Translate']

Rotate = None  # stub
Scale = None  # stub
Transform3d = None  # stub
Translate = None  # stub
