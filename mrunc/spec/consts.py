"""Names and numbers that config.json speaks in, and the kernel numbers behind them.

The spec names things (`"CAP_KILL"`, `"RLIMIT_NOFILE"`, `"pid"`); the kernel wants numbers. These
tables are the one place that translation lives, so the checks, `features()` and the phases that
apply a field all agree on what "known" means.
"""

# The versions of runtime-spec whose config.json we accept (and `features()` advertises).
OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = "1.3.0"

# The eight namespace types of config-linux.md, in the spec's order.
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

# The hook kinds of config.md, in the order they run during a container's life.
# prestart is deprecated (createRuntime replaced it) but still used and still MUST run.
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

# The five capability sets a process has; config.json may list names for each.
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

# Capability name -> bit number (linux/capability.h). The position in this tuple IS the number,
# so a new capability is one more name at the end.
CAPABILITIES = {
    name: number
    for number, name in enumerate((
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
        "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
        "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ))
}

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
