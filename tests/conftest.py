import os

import torch
from hypothesis import HealthCheck, settings

# Without a GPU, voxrender's Triton kernels run in triton's interpreter on CPU tensors
# (tests/test_triton.py): the variable must be set before the kernels are first imported, which
# voxrender does lazily. It changes nothing else (the fused CPU and general paths ignore it).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples every run: CI fails only for a change in the code
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
