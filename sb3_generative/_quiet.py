"""Import the dependencies that print on import without letting them print.

d3rlpy depends on the unmaintained ``gym``, whose ``__init__`` prints a deprecation notice to stderr, and SB3 imports
``gym`` whenever it is installed; d3rlpy prints "Register Shimmy environments." through its logger on import. Neither
is about the user's code. Both are imported here once with their output captured; errors still raise.
"""

import contextlib
import importlib
import io
import sys


def quiet_imports() -> None:
    """Import ``gym`` (if installed) with its import-time notice captured."""
    if "gym" in sys.modules:
        return
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            importlib.import_module("gym")
        except ImportError:
            pass


quiet_imports()
