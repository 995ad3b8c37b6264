"""mrunc — an OCI container runtime in Python, built to show how containers work.

The public API is in mrunc.api (create, start, state, kill, delete, run, list_containers), and
for notebooks mrunc.sandbox (`mrunc.Sandbox`); both are imported lazily so that `import mrunc`
(and so the CLI) stays fast. `%load_ext mrunc` loads the IPython magics (mrunc.notebook).
"""
__version__ = "0.1.0"
# The runtime-spec version this runtime follows: what `state` reports as ociVersion, the newest
# config.json it accepts, and what `--version` prints.
OCI_VERSION = "1.3.0"

_API = ("create", "start", "state", "kill", "delete", "run", "list_containers")


def __getattr__(name):
    if name in _API:
        from . import api
        return getattr(api, name)
    if name == "Sandbox":
        from .sandbox import Sandbox
        return Sandbox
    raise AttributeError(f"module 'mrunc' has no attribute {name!r}")


def load_ipython_extension(ipython):
    """`%load_ext mrunc`: the container magics. IPython is imported only now, never by `import mrunc`."""
    from .notebook import load_ipython_extension as load
    load(ipython)


def unload_ipython_extension(ipython):
    from .notebook import unload_ipython_extension as unload
    unload(ipython)
