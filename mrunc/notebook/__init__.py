"""The Jupyter side of mrunc: magics, widgets, and the renderers they draw with (render.py).

`%load_ext mrunc` (or the "Python 3 (mrunc)" kernel) calls load_ipython_extension below: it
registers the container magics (magics.py). The widgets (widgets.py) and the magics drive
containers through mrunc.sandbox; nothing here forks the kernel.
"""

_MAGICS = {}


def load_ipython_extension(ipython):
    from .magics import ContainerMagics
    magics = ContainerMagics(ipython)
    _MAGICS[id(ipython)] = magics
    ipython.register_magics(magics)


def unload_ipython_extension(ipython):
    """Close the sandbox (its containers are deleted) and forget the magics."""
    magics = _MAGICS.pop(id(ipython), None)
    if magics is None:
        return
    magics.close()
    mm = ipython.magics_manager
    for kind, names in magics.magics.items():
        for name in names:
            mm.magics[kind].pop(name, None)
    mm.registry.pop(type(magics).__name__, None)
