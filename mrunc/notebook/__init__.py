"""The Jupyter side of mrunc: magics, widgets, and the renderers they draw with (render.py).

`%load_ext mrunc` (or the "Python 3 (mrunc)" kernel) calls load_ipython_extension below: it
registers the container magics (magics.py). The magics and the widgets (widgets.py) drive
containers through one sandbox per kernel, `sandbox()`; nothing here forks the kernel.

    from mrunc.notebook import sandbox, stepper, monitor
    stepper("echo hi; sleep 60", memory="32M")       # the Stepper widget on a new container
    monitor(sandbox().start("sleep 5", memory="32M"))   # its memory, CPU and pids, live
    watch("web")                                         # the files it opens, execs, modifies
"""

import sys
import weakref

_MAGICS = {}
_SANDBOX = None
_TOLD = weakref.WeakSet()       # the sandboxes whose notes were shown


def sandbox():
    """This kernel's Sandbox (state root /run/mrunc-lab), made at first use; the magics use it too.
    What does not work here (rootless) is said once, when it is made."""
    global _SANDBOX
    if _SANDBOX is None or _SANDBOX.closed:
        from mrunc.sandbox import Sandbox
        _SANDBOX = Sandbox()
    tell(_SANDBOX)
    return _SANDBOX


def tell(sb):
    """Say a sandbox's notes (what does not work here, and why) on stderr — once per sandbox,
    whether a notebook first reaches it through sandbox() or a %%container cell."""
    if sb in _TOLD:
        return
    _TOLD.add(sb)
    for note in getattr(sb, "notes", ()):
        sys.stderr.write(f"mrunc: {note}\n")
    sys.stderr.flush()


def stepper(script=None, **opts):
    """A Stepper widget on a new container of the kernel's sandbox (options as Sandbox.step)."""
    from .widgets import Stepper
    return Stepper(sandbox().step(script, **opts))


def monitor(container, interval=0.25):
    """A live Monitor widget on a container (a Container, or the name of one)."""
    from .widgets import Monitor
    if isinstance(container, str):
        container = sandbox().get(container)
    return Monitor(container, interval=interval)


def watch(container):
    """The file-access monitor's live table on a container (a Container, or the name of one)."""
    from .watchview import FileWatch
    return FileWatch(sandbox().watch(container))


def register(ipython):
    """Show a Watch (what lab.watch returns) as its live table (watchview.FileWatch) in this
    IPython. By the type's name: neither mrunc.watch nor ipywidgets is imported until one is shown
    (ipywidgets alone is most of what `%load_ext mrunc` would cost)."""
    if ipython is None:
        return
    fmt = ipython.display_formatter.ipython_display_formatter
    fmt.for_type_by_name("mrunc.watch", "Watch", _show_watch)


def _show_watch(wt):
    from IPython.display import display
    from .watchview import FileWatch
    display(FileWatch(wt))


def load_ipython_extension(ipython):
    register(ipython)                   # lab.watch(c) shows as its live table
    from .magics import ContainerMagics, NetworkMagics
    magics = ContainerMagics(ipython)
    _MAGICS[id(ipython)] = magics
    ipython.register_magics(magics)
    magics.network_magics = NetworkMagics(ipython, containers=magics)
    ipython.register_magics(magics.network_magics)


def unload_ipython_extension(ipython):
    """Close the sandbox (its containers are deleted) and forget the magics."""
    magics = _MAGICS.pop(id(ipython), None)
    if magics is None:
        return
    magics.close()
    mm = ipython.magics_manager
    for m in (magics, getattr(magics, "network_magics", None)):
        if m is None:
            continue
        for kind, names in m.magics.items():
            for name in names:
                mm.magics[kind].pop(name, None)
        mm.registry.pop(type(m).__name__, None)
