"""A live view's refresh thread: one per widget, started once, stopped from any thread.

The monitor and the topology both redraw themselves from a background thread while the kernel
stays free for the next cell. What they share is the thread's life — start it once (a second
start is a no-op while it runs), stop it from a button, the cell or the thread itself — and that
lives here, once. What a round does is each widget's own `_loop`.
"""
import threading


class Refreshing:
    """Mixin: `_loop()` runs in a daemon thread named `mrunc-<what>` between start() and stop()."""

    def _init_refresh(self):
        self._stop = threading.Event()
        self._thread = None

    def _start_refresh(self, what):
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"mrunc-{what}")
        self._thread.start()

    def _stop_refresh(self):
        """Ask the thread to end and wait for it (a while), unless we are that thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
