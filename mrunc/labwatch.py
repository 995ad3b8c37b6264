"""A watchdog that cleans up after a notebook kernel that died without closing its sandbox.

A kernel normally closes its sandbox on a shutdown request (sandbox._hook_kernel_shutdown). But a
kernel can also just vanish: when its notebook server goes away first — JupyterHub's
LocalProcessSpawner stops a student's server with SIGINT, on which the server exits without
shutting its kernels down — ipykernel notices its parent is gone and calls os._exit(), so neither
the shutdown request nor atexit runs. The containers would live on, as the student's processes,
with their state and bundle directories.

So each kernel's sandbox starts this small process beside it (in a session of its own, so no
signal meant for the kernel reaches it). It waits on a pidfd for the kernel to exit, then does
what the next sandbox would have done at start — sweep(): delete the containers whose sandbox is
dead, and their directories — and exits.

    python -m mrunc.labwatch KERNEL_PID STATE_ROOT
"""
import os
import select
import subprocess
import sys


def in_kernel():
    """Are we a Jupyter kernel (an IPython kernel app is running in this process)?"""
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython.get_ipython(), "kernel", None) is not None


def start(root):
    """Watch this process; sweep `root` when it is gone."""
    return subprocess.Popen([sys.executable, "-m", "mrunc.labwatch", str(os.getpid()), root],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def main(pid, root):
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    if fd is not None:
        select.select([fd], [], [])          # readable once the process has exited (a zombie)
    from .sandbox import Sandbox
    sb = Sandbox(root=root, check=False)
    sb.sweep()
    sb.close()                               # removes the directories if nothing is left


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
