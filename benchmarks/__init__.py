"""Benchmarks of voxrender against PyTorch3D and a plain-torch PyTorch3D-style baseline.

See ``benchmarks/README.md``: ``python -m benchmarks.report`` writes the comparison tables,
``python -m pytest benchmarks --benchmark-only`` runs the pytest-benchmark suites.
"""
