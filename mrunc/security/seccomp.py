"""linux.seccomp: which system calls the container's program may make, decided by the kernel.

Capabilities say which privileged *operations* a process may do; seccomp filters the system calls
themselves. A filter is a little BPF program the kernel runs on every syscall, before the call
does anything. The config lists rules — "mkdir: SCMP_ACT_ERRNO", "personality with arg 0 == 8:
SCMP_ACT_ERRNO" — and a `defaultAction` for every call no rule matches. Docker's and podman's
default profiles are allow-lists: ~350 syscalls allowed, everything else fails with EPERM (unshare,
mount, keyctl…). Actions:

  SCMP_ACT_ALLOW         run the call
  SCMP_ACT_ERRNO         don't; return -1 with errno = errnoRet (EPERM if not given)
  SCMP_ACT_KILL_PROCESS  kill the whole process with SIGSYS (a shell sees status 128+31 = 159)
  SCMP_ACT_KILL(_THREAD) kill only the calling thread
  SCMP_ACT_TRAP          send SIGSYS, which the program may catch
  SCMP_ACT_LOG           run it, and log it to the audit log
  SCMP_ACT_TRACE         ask the ptracer (errnoRet is the value it is shown); ENOSYS if none
  SCMP_ACT_NOTIFY        block the caller and ask a supervisor: the filter's "listener" fd is sent
                         to the seccomp agent at listenerPath, which answers each call

A filter is inherited by every child and kept across execve; it can never be removed, only more
filters stacked (/proc/<pid>/status: `Seccomp: 2` = filter mode, `Seccomp_filters: N`).

**When it is loaded** (runc's standard_init_linux.go does the same, for the same reasons):
  * With `noNewPrivileges`, as late as possible: after no_new_privs, after the cwd and the
    program were looked up, just before init waits on exec.fifo and execs. Every syscall init
    still makes after the load must pass the filter too — the fewer, the fewer a profile has to
    allow. Ours (strace): sendto/recvfrom (the phase report), openat/read/close of /etc/passwd
    (HOME), openat/write/close of exec.fifo, getdents64 and ioctl(FIOCLEX) (closing fds),
    execve; sendmsg too when the listener fd is sent (so NOTIFY may not be used for sendmsg).
  * Without it, early: installing a filter without no_new_privs needs CAP_SYS_ADMIN (otherwise an
    unprivileged process could filter a setuid program into misbehaving), and the user's caps
    may not include it. So the filter goes in while init is still root with every capability —
    before the bounding set is cut and the user switched — and then applies to those calls.
Whether no_new_privs is set is the config's `noNewPrivileges`, nothing else: libseccomp's own
seccomp_load would set it (we load the program ourselves, and tell libseccomp ATTR_CTL_NNP=0
anyway).

**Syscalls newer than the profile** get ENOSYS, not the default action's EPERM (a stub in front
of the program, as runc's): libc reads ENOSYS as "use the older call" (clone3 -> clone).

**Names the kernel or libseccomp don't know** are skipped (runc does the same): podman's profile
lists syscalls newer than many kernels, and a profile must not fail on an older machine. The
trace (`--trace`, the stepper) counts them on the seccomp call of the security phase.
"""
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from mrunc import OCI_VERSION, fastjson, paths   # not `json`: its import costs as much as the interpreter
from mrunc.linux import seccomp as lsc

# Validation (mrunc.spec.checks.check_seccomp) guarantees the shape; this module assumes it.


def action_value(name, errno_ret):
    """OCI action name (+ errnoRet) -> libseccomp action value. ERRNO and TRACE default to EPERM."""
    base, takes_value = lsc.ACTIONS[name]
    if takes_value:
        return base | ((1 if errno_ret is None else errno_ret) & 0xFFFF)
    return base


class _Loadable:
    """What loading a filter takes: its program(), flags and summary(). Seccomp builds them with
    libseccomp; Program holds them as an earlier build left them (the exec cache below)."""

    loaded = False
    on_notify_fd = None   # set by the caller when the filter has NOTIFY rules
    flags = 0             # SECCOMP_FILTER_FLAG_* for seccomp(2)
    origin = ""           # where the program came from, for the record: "built by libseccomp …"

    def load(self, sys):
        """seccomp(SECCOMP_SET_MODE_FILTER), then hand the listener fd over (NOTIFY)."""
        if self.loaded:
            return
        program = self.program()
        if len(program) // 8 > 4096:  # BPF_MAXINSNS: the kernel would only say EINVAL
            raise OSError(7, f"linux.seccomp: the filter is {len(program) // 8} BPF instructions, "
                             "the kernel takes at most 4096")
        try:
            what = self.summary() + (f"; {self.origin}" if self.origin else "")
            fd = sys.seccomp_load(program, self.flags, what)
        except OSError as e:
            hint = ("" if e.errno not in (1, 13) else
                    " (without process.noNewPrivileges, loading a filter needs CAP_SYS_ADMIN)")
            raise OSError(e.errno, f"linux.seccomp: loading the filter: "
                                   f"{os.strerror(e.errno)}{hint}") from None
        self.loaded = True
        if self.flags & lsc.FLAG_NEW_LISTENER and fd is not None:
            try:
                if self.on_notify_fd is not None:
                    self.on_notify_fd(fd)
            finally:
                os.close(fd)  # the agent has its own copy now; the program must not inherit it


class Seccomp(_Loadable):
    """A filter built from linux.seccomp, ready to load. Build it where errors can still be
    reported cleanly; `load(sys)` installs it, once (a second call does nothing).

    libseccomp generates the program; we load it ourselves with seccomp(2), as runc does, for
    two reasons: the flags are then the kernel's (WAIT_KILLABLE_RECV works whatever libseccomp
    version is installed), and an ENOSYS stub goes in front of the program (lsc.enosys_stub):
    a syscall newer than every one the profile names gets ENOSYS, not the default EPERM, so
    libc falls back to the older call instead of failing (runc 1.1 does the same)."""

    def __init__(self, cfg, lib=None, debug=None):
        self.cfg = cfg
        lib = lib or lsc.load_library()
        self.lib_version = getattr(lib, "version_string", "?")
        self.skipped = []          # names libseccomp does not know
        self.rules = 0
        self.loaded = False
        self.on_notify_fd = None   # set by the caller when the filter has NOTIFY rules
        self.notify = any(r.get("action") == "SCMP_ACT_NOTIFY" for r in cfg.get("syscalls") or ())
        self.flags = 0             # SECCOMP_FILTER_FLAG_* for seccomp(2)
        self.last = {}             # arch token -> highest syscall number named (ENOSYS stub)
        self.filter = self._build(lib, cfg)
        if self.skipped and debug:
            debug(f"linux.seccomp: syscalls unknown to libseccomp {self.lib_version}, ignored: "
                  f"{', '.join(self.skipped)}")

    def _build(self, lib, cfg):
        if self.notify and lib.api_level() < 6:
            raise OSError(95, f"linux.seccomp: SCMP_ACT_NOTIFY needs libseccomp >= 2.5 on Linux "
                              f">= 5.7 (libseccomp {self.lib_version} reports API level "
                              f"{lib.api_level()})")
        default = action_value(cfg["defaultAction"], cfg.get("defaultErrnoRet"))
        try:
            filt = lib.new_filter(default)
        except OSError as e:
            raise OSError(e.errno, f"linux.seccomp.defaultAction {cfg['defaultAction']}: "
                                   f"{e.strerror}") from None
        # no_new_privs is the config's business (process.noNewPrivileges), not libseccomp's
        filt.set_attr(lsc.ATTR_CTL_NNP, 0)
        tokens = []
        for i, name in enumerate(cfg.get("architectures") or ()):
            token = lib.resolve_arch(name)
            if token is None:
                raise OSError(22, f"linux.seccomp.architectures[{i}]: {name} is not known to "
                                  f"libseccomp {self.lib_version}")
            filt.add_arch(token)
            tokens.append(token)
        self.flags = self._flags(lib, cfg)
        syscalls = cfg.get("syscalls") or ()
        if len(syscalls) > 32:
            try:  # a binary search over syscall numbers instead of a linear chain
                filt.set_attr(lsc.ATTR_CTL_OPTIMIZE, 2)
            except OSError:
                pass
        for i, rule in enumerate(syscalls):
            self._add(lib, filt, default, rule, f"linux.seccomp.syscalls[{i}]")
        if self._wants_stub(cfg):
            self.last = self._last_syscalls(lib, tokens, syscalls)
        return filt

    def _flags(self, lib, cfg):
        flags = 0
        for i, flag in enumerate(cfg.get("flags") or ()):
            bit = lsc.FLAGS[flag][1]
            if not lib.flag_supported(bit):
                raise OSError(22, f"linux.seccomp.flags[{i}]: {flag} is not supported by this "
                                  f"kernel ({os.uname().release})")
            flags |= bit
        wait_killable = lsc.FLAGS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"][1]
        if self.notify:
            flags |= lsc.FLAG_NEW_LISTENER
            if flags & lsc.FLAGS["SECCOMP_FILTER_FLAG_TSYNC"][1]:
                flags |= lsc.FLAG_TSYNC_ESRCH  # the kernel refuses TSYNC + a listener without it
        else:
            flags &= ~wait_killable  # only means something for a listener (libseccomp agrees)
        return flags

    @staticmethod
    def _wants_stub(cfg):
        """runc's rule: not when the default lets calls through anyway (ALLOW, LOG, or TRACE,
        whose tracer is expected to handle ENOSYS itself), nor when it already says ENOSYS."""
        default = cfg["defaultAction"]
        if default in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"):
            return False
        return not (default == "SCMP_ACT_ERRNO" and cfg.get("defaultErrnoRet") == lsc.ENOSYS)

    @staticmethod
    def _last_syscalls(lib, tokens, syscalls):
        """For each architecture the profile lists (runc: only those), the highest syscall
        number any rule names, whatever its action."""
        last = {}
        for token in tokens:
            numbers = [lib.resolve_syscall_arch(token, n) for r in syscalls for n in r["names"]]
            numbers = [n for n in numbers if n is not None and n >= 0]
            if numbers:
                last[token] = max(numbers)
        return last

    def _add(self, lib, filt, default, rule, path):
        action = action_value(rule["action"], rule.get("errnoRet"))
        if action == default:
            return  # redundant, and libseccomp refuses a rule that repeats the default
        conds = [(a["index"], lsc.OPERATORS[a["op"]], a["value"], a.get("valueTwo") or 0)
                 for a in rule.get("args") or ()]
        # libseccomp cannot AND two comparisons of the same argument in one rule: then each
        # comparison becomes a rule of its own (OR) — runc's long-standing reading of such rules.
        indexes = [c[0] for c in conds]
        groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]
        for name in rule["names"]:
            nr = lib.resolve_syscall(name)
            if nr is None:
                self.skipped.append(name)
                continue
            for group in groups:
                try:
                    filt.add_rule(action, nr, group)
                except OSError as e:
                    raise OSError(e.errno, f"{path}: {name}: {e.strerror}") from None
                self.rules += 1

    def summary(self):
        cfg = self.cfg
        return (f"default {cfg['defaultAction']}, {self.rules} rules"
                + (f", {len(self.skipped)} unknown names skipped" if self.skipped else "")
                + (", ENOSYS above the newest syscall named" if self.last else ""))

    def program(self):
        """The BPF the kernel gets: the ENOSYS stub (if any), then libseccomp's program."""
        stub = lsc.enosys_stub(self.last) if self.last else b""
        return stub + self.filter.export_bpf()


class Program(_Loadable):
    """A filter as an earlier build left it: the BPF, the flags, the summary — nothing of
    libseccomp. What exec loads (see `exec_program`)."""

    meta = None   # what `read` found beside the program in its file

    def __init__(self, bpf, flags, summary):
        self.bpf, self.flags, self._summary = bpf, flags, summary

    @classmethod
    def build(cls, cfg):
        filt = Seccomp(cfg)
        prog = cls(filt.program(), filt.flags, filt.summary())
        prog.origin = f"built by libseccomp {filt.lib_version}"
        return prog

    def program(self):
        return self.bpf

    def summary(self):
        return self._summary

    def dump(self, cfg, **extra):
        """The cache file's bytes: one JSON line — the linux.seccomp it was built from, the flags,
        the summary, its length in instructions (a cut file is seen as one), `extra` — then the
        BPF."""
        head = {"config": cfg, "flags": self.flags, "summary": self._summary,
                "insns": len(self.bpf) // 8, **extra}
        return fastjson.dumps(head).encode() + b"\n" + self.bpf

    @classmethod
    def read(cls, path, cfg):
        """The program in cache file `path` if it was built from `cfg`, is whole, and the file is
        ours and nobody else may write it; else None (and the caller builds it again). The
        header's other fields are the Program's `meta`."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            if (st.st_mode & 0o170022) != 0o100000 or st.st_uid != os.geteuid():
                return None  # not a regular file, or group/other may write it, or not ours
            head, sep, bpf = f.read().partition(b"\n")
        try:
            meta = fastjson.loads(head)
        except ValueError:
            return None
        if not sep or not bpf or not isinstance(meta, dict) or meta.get("config") != cfg \
                or meta.get("insns") != len(bpf) / 8:
            return None
        flags, summary = meta.get("flags"), meta.get("summary")
        if not isinstance(flags, int) or not isinstance(summary, str):
            return None
        prog = cls(bpf, flags, summary)
        prog.meta = meta
        return prog


# Exec's cache. Building a profile like the engines' default (~350 names, three architectures)
# costs libseccomp ~10 ms of CPU, and `import json` used to add 5 more — on every exec (runc pays
# the build in every `runc init`). But the filter is the container's: linux.seccomp cannot
# change after create. So create keeps the program init loaded in the container's state
# directory (process/parent.py), and every exec loads it as it is, without libseccomp; only if
# that file is missing or not to be trusted does exec build it (and keep it). (crun too keeps a
# container's seccomp.bpf in its state directory.)
EXEC_CACHE = "seccomp.bpf"


def exec_key(cfg):
    """What the container's kept program is headed with: its linux.seccomp as state.json holds
    it (the same at create and every exec: it cannot change), as one string — its repr. Not as
    JSON: the encoder makes a string per name and brace first, and the parser an object for
    each (≈ 0.1–0.2 MiB for an engine's profile, on every exec); repr writes one string. Nor
    hashed: the first SHA-256 in a process pages in ≈ 0.2 MiB of the interpreter's code."""
    return repr(cfg)


def exec_program(cfg, state_dir, write):
    """linux.seccomp `cfg` as a Program: from the cache in `state_dir`, else built now and handed
    to `write(path, data)` (an atomic write; OSError ignored: then the next exec builds again)."""
    path = paths.join(state_dir, EXEC_CACHE)
    digest = exec_key(cfg)
    prog = Program.read(path, digest)
    if prog is not None:
        prog.origin = f"kept in the state dir ({EXEC_CACHE})"
    else:
        prog = Program.build(cfg)
        try:
            write(path, prog.dump(digest))
        except OSError:
            pass
    return prog


def keep_for_exec(state_dir, digest, prog):
    """Create keeps the container's program (`digest`: exec_key of its profile) for exec."""
    from ..state import write_atomic
    try:
        write_atomic(paths.join(state_dir, EXEC_CACHE), prog.dump(digest))
    except OSError:
        pass    # then the first exec builds it


def preload():
    """Called by init before pivot_root: libseccomp.so must be mapped while /usr/lib is there.
    Returns which file it is (linux.seccomp.library_identity: what the user's cache of built
    programs records), or None if that cannot be told."""
    lsc.load_library()
    try:
        return lsc.library_identity()
    except OSError:
        return None


def listener_message(config, state, pid):
    """The Container Process State the runtime sends to the seccomp agent (runtime-spec
    config-linux "seccomp"): the fd rides along with SCM_RIGHTS, named by `fds`."""
    seccomp = (config.get("linux") or {}).get("seccomp") or {}
    msg = {"ociVersion": state.get("ociVersion", OCI_VERSION), "fds": ["seccompFd"], "pid": pid,
           "metadata": seccomp.get("listenerMetadata") or "", "state": state}
    return fastjson.dumps(msg).encode()


def send_to_listener(config, state, pid, fd, sys=None):
    """Connect to linux.seccomp.listenerPath and send the state and the notify fd, once.
    Failing to deliver it is an error: the container would block on its first notified call.
    `sys`: the runtime's Syscalls, which records the hand-over (connect + sendmsg)."""
    import socket
    from mrunc.linux import Syscalls
    path = config["linux"]["seccomp"]["listenerPath"]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s, \
                (sys or Syscalls()).around("sendmsg", path, "SCM_RIGHTS", "seccomp notify fd + state"):
            s.connect(path)
            socket.send_fds(s, [listener_message(config, state, pid)], [fd])
    except OSError as e:
        raise OSError(e.errno, f"linux.seccomp.listenerPath {path}: {e.strerror}", path) from None
