"""``python -m reference``: the same as ``python -m reference.fit``."""

import sys

from .fit import main

sys.exit(main())
