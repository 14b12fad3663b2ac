"""STUB: being written. Replace this whole file."""

__all__ = ['ImplicitRenderer', 'VolumeRenderer', 'VolumeSampler']

ImplicitRenderer = None  # stub
VolumeRenderer = None  # stub
VolumeSampler = None  # stub
