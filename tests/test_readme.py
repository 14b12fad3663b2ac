"""The README's usage example runs as written and its shape comments are true."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_readme_usage_example_runs():
    text = README.read_text()
    block = re.search(r"## Usage\n\n```python\n(.*?)```", text, re.S).group(1)
    assert len(block.strip().splitlines()) <= 16
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert tuple(scope["images"].shape) == (4, 128, 128, 4)
    assert tuple(scope["rgb"].shape) == (4, 128, 128, 3)
    assert tuple(scope["silhouette"].shape) == (4, 128, 128)
    # The expanded volumes were kept as views of the sigmoid outputs, never copied.
    assert scope["volumes"].densities().stride(0) == 0
