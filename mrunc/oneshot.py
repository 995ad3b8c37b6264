"""`mrunc run`: create a container, start it and, in the foreground, stay with it until it
exits, then delete it — in one command what an engine does in four (runc run). mrunc.api offers
it as `run`; the CLI's run imports this module alone, not mrunc.api, whose other operations
(exec, update, events…) a run never uses.
"""
from .errors import MruncError
from .lifecycle import delete, start
from .process.parent import Events, create
from .userdirs import DEFAULT_ROOT


def run(cid, bundle, root=DEFAULT_ROOT, detach=False, keep=False, network=None, **kw):
    """create + start; in the foreground, wait for the container and return its exit status.
    network: a lab network attachment file (mrunc.network.step), wired between create and start."""
    if detach and network:
        raise MruncError("--network: only for a foreground run (not with --detach)")
    if detach:
        start(cid, root, container=create(root, cid, bundle, **kw))
        return 0
    return _run_foreground(cid, bundle, root, keep, network, **kw)


def _run_foreground(cid, bundle, root, keep, network, **kw):
    """Create, start, stay with init until it exits (mrunc.process.foreground), then delete
    (unless `keep`)."""
    from .process import foreground
    box = {}
    holder = None
    if network:
        from .network.step import hold_netns
        holder = hold_netns(network)        # rootless: the container's network namespace, made now
        if holder:
            kw["netns_path"] = holder.path
    try:
        c = create(root, cid, bundle, on_console=lambda fd: box.__setitem__("pty", fd), **kw)
        if network:
            _network_step(cid, root, network, c.pid, kw.get("events"), holder)
    finally:
        if holder:
            holder.release()                # init is in the namespace now: it lives on with it
    handlers = foreground.forward_signals(c.pid)
    try:
        # create's Container, handed on: its record is not read back twice (Container.relock)
        start(cid, root, events=kw.get("events"), container=c)
        return foreground.stay(c.pid, box.get("pty"))
    finally:
        foreground.restore_signals(handlers)
        if not keep:
            try:
                delete(cid, root, force=True, container=c)
            except Exception:  # noqa: BLE001 — already gone is fine
                pass


def _network_step(cid, root, network, pid, events, holder=None):
    """Wire the created container to its lab network before it starts (see mrunc.network.step);
    if that fails, the container goes, as if create had failed."""
    from .network.step import run_step
    try:
        run_step(network, pid, events or Events(), netns=holder and holder.path)
    except BaseException as e:
        if events is not None:
            events.error(e)
        try:
            delete(cid, root, force=True)
        except Exception:  # noqa: BLE001 — the error that matters is the network's
            pass
        raise
