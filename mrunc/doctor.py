"""`mrunc doctor`: can this user run containers here, and with limits? A pre-flight report.

A teacher runs it on the class server (as a student would be: an ordinary user, from a notebook
server's environment); the notebook sandbox runs it once at start and shows only the problems.
Every line is one fact read from the kernel or the filesystem, and every failing line says how to
fix it. Nothing is changed.

    ok    fine
    info  a fact worth knowing, nothing to fix (not shown by the notebook)
    FAIL  something needed is missing (exit status 1): containers, or their limits, will not work
    warn  something optional is missing: a feature is skipped, the rest works
"""
import json
import os
import platform
import re
import shutil
from dataclasses import asdict, dataclass


@dataclass
class Check:
    name: str
    status: str                 # ok, info, warn, FAIL
    detail: str
    fix: str = ""


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


# ---- user namespaces -------------------------------------------------------------------------

SYSCTLS = (  # (file, value that closes user namespaces to users, the fix)
    ("/proc/sys/user/max_user_namespaces", "0", "sysctl -w user.max_user_namespaces=15000"),
    ("/proc/sys/kernel/unprivileged_userns_clone", "0", "sysctl -w kernel.unprivileged_userns_clone=1"),
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
     "an AppArmor profile allowing `userns,` for the mrunc program (or sysctl -w "
     "kernel.apparmor_restrict_unprivileged_userns=0)"),
)


def check_userns():
    if os.geteuid() == 0:
        return Check("user namespaces", "ok", "running as root: none needed")
    for path, bad, fix in SYSCTLS:
        if _read(path) == bad:
            return Check("user namespaces", "FAIL", f"user namespaces are not enabled in {path} "
                         f"(it is {bad}): unprivileged users cannot make containers", fix)
    present = [f"{os.path.basename(p)}={_read(p)}" for p, _, _ in SYSCTLS if _read(p) is not None]
    failed = _try_userns()
    if failed:
        return Check("user namespaces", "FAIL", f"allowed by the sysctls ({', '.join(present)}), but "
                     f"making one failed: {failed}", "see dmesg (an LSM such as AppArmor or "
                     "SELinux may deny it)")
    return Check("user namespaces", "ok", "allowed for unprivileged users (" + ", ".join(present) + ")")


def _try_userns():
    """Really make one, mapping our uid to root (`unshare -r`): Ubuntu's AppArmor restriction
    lets the namespace be made and fails the uid_map write. None when it worked."""
    import subprocess
    exe = shutil.which("unshare") or "/usr/bin/unshare"
    if not os.path.exists(exe):
        return None                 # util-linux missing: the sysctls are all we know
    p = subprocess.run([exe, "--user", "--map-root-user", "true"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=10)
    return None if p.returncode == 0 else (p.stderr.strip().splitlines() or [f"status {p.returncode}"])[-1]


def check_subids():
    """Optional: ranges let a container have more than one uid (newuidmap); without them a
    single-id map (you are root inside, nobody else exists) is used. Names the maps the notebook
    sandbox will give containers (mrunc.security.subids.sandbox_maps)."""
    if os.geteuid() == 0:
        return Check("subordinate ids", "ok", "running as root: any map can be written")
    from .security import subids
    maps, why = subids.sandbox_maps()
    if maps is None:
        if not all(subids.ranges(k) for k in ("uid", "gid")):
            return Check("subordinate ids", "info", f"single-id maps (root inside is you, no other "
                         f"uid exists): {why}", f"usermod --add-subuids/--add-subgids for "
                         f"{subids.user_name()} (non-overlapping ranges per student); apt-get "
                         "install uidmap")
        return Check("subordinate ids", "warn", f"you have ranges, but single-id maps are used: {why}",
                     "apt-get install uidmap (newuidmap/newgidmap setuid root), and no "
                     "NoNewPrivileges= on the notebook server")
    def span(first, size):
        return f"{first}" if size == 1 else f"{first}-{first + size - 1}"
    shown = "; ".join(f"{k}s " + ", ".join(f"{span(m['containerID'], m['size'])} → {span(m['hostID'], m['size'])}"
                                          for m in maps[k]) for k in ("uid", "gid"))
    return Check("subordinate ids", "ok", f"containers get {shown} (newuidmap/newgidmap, from "
                 "/etc/subuid and /etc/subgid)")


# ---- cgroups -------------------------------------------------------------------------------------

def check_cgroups(root="/sys/fs/cgroup", mountinfo="/proc/self/mountinfo", proc_cgroup="/proc/self/cgroup"):
    from .cgroups import delegation
    from .cgroups.layout import hierarchies
    layout, mounts = hierarchies(root, mountinfo)
    if os.geteuid() == 0:
        if layout == "none":
            return Check("cgroup limits", "FAIL", f"no cgroup filesystem under {root}",
                         "mount cgroup2 on /sys/fs/cgroup")
        return Check("cgroup limits", "ok", f"running as root: cgroup {layout} at {root}")
    sub = delegation.find(root, mountinfo, proc_cgroup)
    if sub.path is None:
        fix = ("boot with systemd.unified_cgroup_hierarchy=1 (pure cgroup v2), then delegate a subtree "
               "to each student (SystemdSpawner with Delegate=, or user@.service)"
               if layout != "v2" else
               "give each student's server a delegated subtree: systemd Delegate=memory pids cpu "
               "(SystemdSpawner unit_extra_properties, or user@.service), or chown one to the user")
        return Check("cgroup limits", "FAIL", f"memory, cpus and pids limits are skipped: {sub.reason}", fix)
    missing = sub.missing()
    if missing:
        return Check("cgroup limits", "FAIL", f"{sub.path} is delegated, but without the "
                     f"{' '.join(missing)} controller(s) (cgroup.controllers: "
                     f"{' '.join(sub.controllers) or 'empty'})",
                     f"enable them in the parent's cgroup.subtree_control (systemd: "
                     f"Delegate={' '.join(delegation.WANTED)})")
    return Check("cgroup limits", "ok", f"{sub.path} is delegated to you with "
                 f"{' '.join(sub.controllers)} (processes move to its {delegation.LEAF} leaf "
                 "before controllers are enabled)")


# ---- files ----------------------------------------------------------------------------------------

def check_state_dir():
    from . import userdirs
    try:
        root = userdirs.default_root()
        userdirs.check_if_present(root)
    except userdirs.UnsafeDir as e:
        return Check("state directory", "FAIL", str(e), "use a directory of your own (0700): set "
                     "XDG_RUNTIME_DIR, or pass --root")
    return Check("state directory", "ok", f"{root} (yours, checked at every use)")


def check_rootfs():
    from .sandbox import busybox_rootfs
    path = busybox_rootfs()
    if not os.path.lexists(os.path.join(path, "bin", "sh")):
        return Check("rootfs", "FAIL", f"no root filesystem at {path} (bin/sh missing)",
                     "make rootfs (or set MRUNC_ROOTFS)")
    return Check("rootfs", "ok", path)


def check_seccomp():
    from .linux import seccomp
    try:
        lib = seccomp.load_library()
    except OSError as e:
        return Check("seccomp", "FAIL", str(e), "apt-get install libseccomp2")
    return Check("seccomp", "ok", f"libseccomp {lib.version_string}, API level {lib.api_level()}")


# ---- kernel -----------------------------------------------------------------------------------------

FEATURES = (  # (needs kernel, what)
    ((5, 3), "clone3"),
    ((5, 6), "time namespaces"),
    ((5, 6), "openat2"),
    ((5, 7), "CLONE_INTO_CGROUP"),
)


def check_kernel(release=None):
    release = release or platform.release()
    m = re.match(r"(\d+)\.(\d+)", release)
    have = (int(m[1]), int(m[2])) if m else (0, 0)
    lacking = [f"{what} (needs {v[0]}.{v[1]})" for v, what in FEATURES if have < v]
    if lacking:
        return Check("kernel", "warn", f"{release}: no {', '.join(lacking)}; those are skipped",
                     "a kernel >= 5.7 (Debian 11+, Ubuntu 20.10+)")
    return Check("kernel", "ok", f"{release}: " + ", ".join(w for _, w in FEATURES))


CHECKS = (check_userns, check_subids, check_cgroups, check_state_dir, check_rootfs, check_seccomp,
          check_kernel)


def run_checks():
    return [c() for c in CHECKS]


def problems(checks=None):
    """One line per check that is not ok (what the notebook sandbox shows once)."""
    return [f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "")
            for c in (checks if checks is not None else run_checks()) if c.status in ("warn", "FAIL")]


def report(checks, as_json=False):
    if as_json:
        return json.dumps({"ok": all(c.status != "FAIL" for c in checks), "uid": os.geteuid(),
                           "checks": [asdict(c) for c in checks]}, indent=2)
    lines = [f"mrunc doctor: uid {os.geteuid()}, kernel {platform.release()}"]
    for c in checks:
        lines.append(f"  {c.status:<5} {c.name}: {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"        fix: {c.fix}")
    return "\n".join(lines)
