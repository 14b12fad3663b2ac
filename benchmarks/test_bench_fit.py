"""pytest-benchmark suite: one step of the tutorial's fit (forward, huber losses, backward, Adam).

``python -m pytest benchmarks --benchmark-only -k fit`` (options in ``benchmarks/conftest.py``).
"""

import torch


def test_fit_step(run_case, config_name, backend):
    loss = run_case(config_name, backend, "fit_step")
    assert torch.isfinite(loss).all()
