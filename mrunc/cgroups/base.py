"""What every cgroup manager does the same way, whatever the layout; and helpers over linux.resources.

A manager knows a set of cgroup directories (one per v1 hierarchy, or one in the unified tree) and
which of them it created. `set()` works in two passes: first every requested field is turned into
(directory, file, value, JSON path) writes and each file is checked to exist — a field the host
cannot honour raises before anything was written — then the writes happen in order.
"""

import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from mrunc import paths
from mrunc.errors import CgroupError
from mrunc.signals import SIGKILL

from . import fs

R = "linux.resources"


def _signal(pid, signum):
    # One place that signals, so unit tests can stand in for it.
    os.kill(pid, signum)


class Manager:
    """The interface (and the shared half) of the v1, v2 and disabled managers."""

    layout = "none"
    # hierarchy keys in the order pids() and freeze() prefer them
    _procs_order = ("",)
    # Does plan() write nothing? Then create plans the limits while init mounts, and only
    # writes them in the cgroup phase (process.parent._plan_limits). Not on v2, where planning
    # enables the controllers a limit needs (cgroup.subtree_control: a write of its own).
    plans_ahead = True

    def __init__(self, mounts, paths, rootless=False):
        self.mounts = dict(mounts)          # key -> (mountpoint, mount_root)
        self.paths = dict(paths)            # key -> inner path, e.g. "/mrunc/c1"
        self.rootless = rootless
        self.created = []                   # directories apply()/set() made, parents first
        self.sys = None                     # create's Syscalls: its calls are recorded (fs doc)
        self._made = False                  # create() has made them (see create)

    # -- where ------------------------------------------------------------------------------
    @property
    def path(self):
        """The container's cgroup as /proc/<pid>/cgroup shows it (the main hierarchy's path)."""
        for key in self._procs_order:
            if key in self.paths:
                return self.paths[key]
        return next(iter(self.paths.values()), "")

    def dir(self, key):
        """Absolute directory of the cgroup in hierarchy `key` (None if not mounted)."""
        if key not in self.paths or key not in self.mounts:
            return None
        return paths.join(self.mounts[key][0], self.paths[key].lstrip("/")).rstrip("/")

    def dirs(self):
        """Every distinct directory, in a stable order (co-mounted controllers share one)."""
        out = []
        for key in sorted(self.paths):
            d = self.dir(key)
            if d and d not in out:
                out.append(d)
        return out

    def _main_dir(self):
        for key in self._procs_order:
            if self.dir(key):
                return self.dir(key)
        return None

    def exists(self):
        return any(paths.isdir(d) for d in self.dirs())

    def check_unused(self):
        """Refuse a cgroup that already holds processes, or is frozen (runc's "unfit cgroup").

        `kill --all`, `pause` and `delete` act on every process of the container's cgroup: a
        cgroupsPath naming a cgroup in use (another container's, a service's) would hand them
        processes that are not the container's. An existing, empty one is fine (engines make the
        directory first). Called by create before init exists; every hierarchy is looked at,
        once (a stat each: the usual answer is that none exists yet)."""
        existing = [d for d in self.dirs() if paths.isdir(d)]
        for d in existing:
            pids = fs.procs(d)
            if pids:
                raise CgroupError(f"linux.cgroupsPath: the cgroup {d} already holds {len(pids)} "
                                  f"process(es) (pid {', '.join(map(str, pids[:3]))}): a container "
                                  f"needs a cgroup of its own")
        if existing and self.can_freeze() and self.freezer_state() == "frozen":
            raise CgroupError(f"linux.cgroupsPath: the cgroup {self.path} is frozen")

    # -- lifecycle ----------------------------------------------------------------------------
    def create(self):
        """Make the cgroup directories (idempotent). Once made by this manager, they are not
        looked at again: `create` asks three times (its mount phase, set, apply), and each look
        is a stat per hierarchy and reads (v1's cpuset cpus/mems, v2's controllers)."""
        if not self._made:
            self._make()
            self._made = True

    def _make(self):
        for d in self.dirs():
            fs.mkdir(d, self.created, self.sys)

    def apply(self, pid=None, joined=()):
        """Create the cgroup in every hierarchy, then move `pid` (all its threads) in — but for
        the directories in `joined`, which init joins itself (process.parent._tasks_for_init)."""
        self.create()
        if pid is not None:
            for d in self.dirs():
                if d not in joined:
                    fs.join(d, pid, self.sys)

    def kernel_memory_ignored(self):
        """(memory fields this layout and kernel have no knob for any more, why). Such a limit
        cannot be had at all, by any runtime; runc warns and goes on, and so do we (drop_gone)."""
        return (), ""

    def drop_gone(self, resources):
        """(resources without the fields of kernel_memory_ignored, one warning or None)."""
        gone, why = self.kernel_memory_ignored()
        mem = (resources or {}).get("memory") or {}
        asked = [k for k in gone if nonzero(mem, k) is not None]
        if not asked:
            return resources, None
        kept = {k: v for k, v in mem.items() if k not in asked}
        return dict(resources, memory=kept), f"{R}.memory: ignoring {', '.join(asked)}: {why}"

    def set(self, resources, planned=None):
        """Write linux.resources; raises CgroupError (JSON path first) for what cannot be honoured.
        `planned`: what plan(resources) returned earlier, written as it is."""
        self.create()
        self._write(self._checked_plan(resources or {}) if planned is None else planned)

    def plan(self, resources):
        """The writes set(resources) makes, each file checked to exist; none made yet."""
        self.create()
        return self._checked_plan(resources or {})

    def _checked_plan(self, resources):
        """Every write `set()` will make, each file checked to exist: nothing is written yet."""
        writes = self._plan(resources)
        seen = set()
        for d, name, value, field in writes:
            if paths.join(d, name) in seen:
                continue    # one file, several writes (devices.allow: one rule each)
            seen.add(paths.join(d, name))
            if not fs.exists(paths.join(d, name)):
                raise CgroupError(f"{field}: {name} is not available in {d} "
                                  f"(the kernel lacks this knob or the controller is not enabled)")
        return writes

    def _write(self, writes):
        for d, name, value, field in writes:
            fs.write(paths.join(d, name), value, field, self.sys)

    def _plan(self, resources):
        raise NotImplementedError

    # -- processes ------------------------------------------------------------------------------
    def pids(self):
        d = self._main_dir()
        return fs.procs(d) if d and paths.isdir(d) else []

    def can_freeze(self):
        return False

    def kill_all(self, signum):
        """Signal every process in the cgroup; frozen meanwhile so a forking process cannot escape
        (mrunc.cgroups.freezer.signal_all, which kill and delete call from create's record)."""
        if not self.exists():
            return
        from . import freezer
        freezer.signal_all(self._main_dir(), self.freezer_file() if self.can_freeze() else None,
                           signum, send=_signal, kill_file=self._kill_file(), sys=self.sys)

    def _kill_file(self):
        """v2's cgroup.kill (signal_all); None: none in this layout."""
        return None

    def remove(self, timeout=2.0):
        """Kill what is left (SIGKILL), wait until it is dead (asleep, not polling the cgroup:
        mrunc.gone), then rmdir the cgroup, its children, and what we created."""
        if self.exists() and self.pids():
            self.kill_all(SIGKILL)   # frozen meanwhile where it can be: no new process escapes
            from mrunc.gone import all_gone
            all_gone(self.pids(), timeout, reap=False)   # whoever's children they are reaps them
        fs.remove(self.dirs(), self.created)
        self.created, self._made = [], False

    # -- freezer (overridden where a freezer exists: mrunc.cgroups.freezer) -------------------
    def freezer_file(self):
        """freezer.state (v1) or cgroup.freeze (v2) of the container's cgroup; None: no freezer."""
        return None

    def freeze(self):
        raise CgroupError(f"cannot freeze {self.path}: no freezer in this cgroup layout")

    def thaw(self):
        pass

    def freezer_state(self):
        return "thawed"

    def stats(self):
        """Usage and limits: memory, cpu, pids, io (mrunc.cgroups.usage.summary); None = unknown.
        Its module is imported now: only `events` and the notebook ask (not create, exec)."""
        from . import usage
        return usage.summary(usage.Files.of(self))

    def __repr__(self):
        return f"<{type(self).__name__} {self.layout} {self.path!r}>"


def empty_stats():
    """stats() with nothing known (no cgroup)."""
    from . import usage
    return usage.summary(usage.Files({}, False))


# ---- helpers over linux.resources ---------------------------------------------------------------

def given(obj, key):
    """The field's value, or None when unset. 0 means unset for the numeric fields runc treats so."""
    return (obj or {}).get(key)


def nonzero(obj, key):
    v = given(obj, key)
    return None if v in (None, 0) else v


def requested(resources, prefix=R):
    """JSON paths of every field that asks for something (empty objects and lists ask nothing,
    except `devices: []`, which means deny all)."""
    out = []
    for key, value in (resources or {}).items():
        path = f"{prefix}.{key}"
        if value is None or value is False:     # false flags (disableOOMKiller) ask for nothing
            continue
        if isinstance(value, dict):
            if key == "unified" and prefix == R:
                out += [f'{path}["{k}"]' for k, v in value.items() if v is not None]
            else:
                out += requested(value, path)
        elif isinstance(value, list):
            if value or key == "devices" and prefix == R:
                out.append(path)
        else:
            out.append(path)
    return out


def device_rule(rule, field):
    """An OCI device rule as (allow, "c 1:3 rwm") — the v1 devices.allow/deny syntax."""
    kind = rule.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise CgroupError(f"{field}.type: {kind!r} is not one of a, b, c")
    access = rule.get("access")
    access = "rwm" if access is None else access
    if not access or set(access) - set("rwm"):
        raise CgroupError(f"{field}.access: {access!r} must be a non-empty combination of r, w, m")
    # The kernel reads at most three letters: "rrw" would be read as "r". Write each letter once.
    access = "".join(c for c in "rwm" if c in access)
    if kind == "a":
        # The kernel reads any rule starting with "a" as "every device, every access": refuse
        # to turn a partial request ("a *:* r") into more (or less) than was asked.
        if set(access) != set("rwm"):
            raise CgroupError(f"{field}: a rule for all devices must have access rwm, not {access!r}")
        text = "a"
    else:
        major, minor = rule.get("major"), rule.get("minor")
        for key, n in (("major", major), ("minor", minor)):
            if n is not None and n > 0xFFFFFFFF:
                raise CgroupError(f"{field}.{key}: {n} is out of range (device numbers are 32-bit)")
        num = lambda n: "*" if n is None or n < 0 else str(n)   # noqa: E731
        text = f"{kind} {num(major)}:{num(minor)} {access}"
    return bool(rule.get("allow")), text


def allows_all(rules):
    """True when a device list ends up allowing every device (nothing to enforce)."""
    verdict = False
    for i, rule in enumerate(rules):
        allow, text = device_rule(rule, f"{R}.devices[{i}]")
        if text == "a":
            verdict = allow    # a rule for every device replaces everything before it
        elif not allow:
            verdict = False
    return verdict
