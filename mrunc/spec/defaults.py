"""The config.json that `mrunc spec` writes: the same starting point `runc spec` writes.

Read it as the smallest sensible container: a shell on a terminal, uid 0 but only three
capabilities, new pid/network/ipc/uts/mount namespaces, the usual kernel filesystems mounted,
a few /proc and /sys files hidden or read-only, and every device denied in the cgroup.
"""

import os

# What `runc spec` (1.1.x) writes; any ociVersion we support would do, this one keeps the files
# the two tools write identical.
DEFAULT_OCI_VERSION = "1.0.2-dev"

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_config(rootless=False):
    """A fresh config dict, equal to `runc spec` (or `runc spec --rootless`) output.

    rootless: for a user without privileges. Then the container gets a user namespace mapping
    only our own uid/gid to root, keeps the host network (a new one needs privilege to be any use),
    binds the host's /sys (sysfs cannot be mounted without owning a network namespace), drops the
    devpts gid=5 option (group 5 is not mapped) and the cgroup device rules (not ours to set).
    """
    config = {
        "ociVersion": DEFAULT_OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(_CAPS),
                "effective": list(_CAPS),
                "permitted": list(_CAPS),
                "ambient": list(_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }
    if rootless:
        _make_rootless(config)
    return config


def _make_rootless(config):
    linux = config["linux"]
    # Rebuilt rather than edited so the keys come out in runc's order.
    config["linux"] = {
        "uidMappings": [{"containerID": 0, "hostID": os.geteuid(), "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": os.getegid(), "size": 1}],
        "namespaces": [ns for ns in linux["namespaces"] if ns["type"] != "network"] + [{"type": "user"}],
        "maskedPaths": linux["maskedPaths"],
        "readonlyPaths": linux["readonlyPaths"],
    }
    for mount in config["mounts"]:
        if mount["type"] == "devpts":
            mount["options"].remove("gid=5")
        elif mount["type"] == "sysfs":
            mount.update(type="none", source="/sys", options=["rbind"] + mount["options"])
