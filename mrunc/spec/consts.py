"""Names and numbers that config.json speaks in, and the kernel numbers behind them.

The spec names things (`"CAP_KILL"`, `"RLIMIT_NOFILE"`, `"pid"`); the kernel wants numbers. These
tables are the one place that translation lives, so the checks, `features()` and the phases that
apply a field all agree on what "known" means.
"""
from mrunc import OCI_VERSION as OCI_VERSION_MAX  # the newest: the one we follow

# The versions of runtime-spec whose config.json we accept (and `features()` advertises).
OCI_VERSION_MIN = "1.0.0"

# The eight namespace types of config-linux.md, in the spec's order.
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

# The hook kinds of config.md, in the order they run during a container's life.
# prestart is deprecated (createRuntime replaced it) but still used and still MUST run.
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

from mrunc.linux import CAP_NAMES  # noqa: E402  (kernel constants live in mrunc.linux)

# The five capability sets a process has; config.json may list names for each.
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

# Capability name -> bit number; the names live with the other kernel constants in mrunc.linux.
CAPABILITIES = {name: number for number, name in enumerate(CAP_NAMES)}

# Rlimit name -> resource number, as setrlimit(2) and Python's `resource` module take it.
# These are the asm-generic numbers used by x86, arm, arm64, riscv, s390 and powerpc (mips, sparc
# and alpha shuffle a few; a unit test compares with `resource` so such a port would notice).
# Written out rather than imported: `resource` is one more shared library to load on every create.
RLIMITS = {
    name: number
    for number, name in enumerate((
        "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
        "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
        "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
    ))
}

# process.scheduler and process.ioPriority names -> the numbers sched_setattr(2) and
# ioprio_set(2) take (linux/sched.h, linux/ioprio.h). SCHED_ISO is in the spec but not in Linux.
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
