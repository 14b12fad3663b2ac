"""The one exception type for user errors (bad flags, bad data, an unusable run folder).

The command line prints a :class:`FitError` as a single ``voxrender-fit: error: ...`` line and
exits with status 2; anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["FitError"]


class FitError(Exception):
    """A problem the user can fix: the message names the flag or file, what was expected and what came."""
