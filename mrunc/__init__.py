"""mrunc — an OCI container runtime in Python, built to show how containers work.

The public API is in mrunc.api (create, start, state, kill, delete, run, list_containers); it is
imported lazily so that `import mrunc` (and so the CLI) stays fast.
"""
__version__ = "0.1.0"

_API = ("create", "start", "state", "kill", "delete", "run", "list_containers")


def __getattr__(name):
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'mrunc' has no attribute {name!r}")
