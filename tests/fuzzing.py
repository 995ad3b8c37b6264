"""A seeded config fuzzer: bad input of every shape, made from the default config (`mrunc spec`).

Each case is the default config with a few random **edits** — (JSON path, new value), or (path,
DELETE) — so a case is small to print, to save in the regression corpus (tests/fuzz_corpus/) and
to replay. The same seed always gives the same cases.

What a case may do to mrunc, and what it may not (`judge_validation`, and fuzz_driver.py for real
containers): succeed, or fail with ONE line whose message starts with a JSON path that exists in
the config (`mounts[3].options[1]: ...`; for "required", its parent exists). Never a traceback,
never two lines for one cause.

Two kinds of edits:
- `validation` edits go anywhere: delete keys, swap types, out-of-range and huge numbers, unicode
  (lone surrogates, NUL, long strings), `..` and /proc paths, duplicate or unknown namespaces, bogus
  mount options, bad id maps, unknown seccomp actions and syscalls.
- `container` edits stay mostly valid, so that `mrunc run` gets past validation and the phases
  meet them: odd mount options and destinations (symlinks in the fuzz rootfs, `..`), seccomp rules
  for syscalls that do not exist, hooks that fail or hang past a 1 s timeout, limits, rlimits,
  sysctls, devices, dropped namespaces (the mount namespace too: the driver runs every case in
  a private mount namespace of its own, which such a case then shares).
"""
import copy
import json
import os
import re

DELETE = "<delete>"

# Values that make checks think: wrong types, edges of every integer kind, unicode that is not
# valid UTF-8 on the way out (a lone surrogate), NUL bytes, paths that climb or loop.
HUGE = [-1, 0, 1, -2**31, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64, -2**63 - 1, 10**30, 1.5,
        float("inf")]
STRINGS = ["", " ", "x", "é", "\u2603", "\ud800", "a\u0000b", "\n", "x" * 5000, "..", "../..",
           "/..", "/../../etc", "/proc/self/fd/3", "/proc/self/cwd", "//", "/dev/../proc",
           "relative/path", "/escape/etc", "/loop/x", "/abs", "/bin/sh", "/bin/sh/x", "-1", "0x10",
           "CAP_BOGUS", "SCMP_ACT_BOGUS", "RLIMIT_BOGUS", "bogus"]
TYPES = [None, True, False, 0, -1, 1.5, "", "str", [], [1], {}, {"k": "v"}]

NAMESPACES = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]
MOUNT_OPTIONS = ["bogus", "rro", "idmap", "tmpcopyup", "mode=99999", "size=-1", "size=1k", "",
                 "bind", "rbind", "remount", "ro", "rw", "nosuid", "private", "rshared", "unbindable",
                 "nosymfollow", "uid=4294967295", "x" * 300, "noexec", "strictatime", "mand"]
SYSCALLS = ["getcwd", "mkdir", "bogus_syscall", "", "open", "fchmod", "ptrace", "x" * 100, "\u2603"]
ACTIONS = ["SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_BOGUS", "SCMP_ACT_KILL",
           "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY", "", "allow"]


# ---- paths in a JSON document -------------------------------------------------------------------

def show_path(parts):
    """("mounts", 3, "options") -> 'mounts[3].options', the way mrunc's messages spell it."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out


def all_paths(node, prefix=()):
    """Every (path tuple) inside node, containers and leaves, parents first."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from all_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from all_paths(v, prefix + (i,))


def get(node, parts):
    for p in parts:
        node = node[p]
    return node


def apply(config, edits):
    """The config with `edits` made, in order; an edit whose parent is gone is skipped."""
    config = copy.deepcopy(config)
    for path, value in edits:
        path = tuple(path)
        try:
            parent = get(config, path[:-1])
            key = path[-1]
            if value == DELETE:
                del parent[key]
            elif isinstance(parent, list) and key == len(parent):
                parent.append(copy.deepcopy(value))
            else:
                parent[key] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            pass
    return config


# ---- the edits ------------------------------------------------------------------------------------

def _any_path(rng, config):
    return rng.choice([p for p in all_paths(config) if p] or [("process",)])


def _delete(rng, config):
    return [(_any_path(rng, config), DELETE)]


def _swap_type(rng, config):
    return [(_any_path(rng, config), rng.choice(TYPES + STRINGS[:8]))]


def _number(rng, config):
    nums = [p for p in all_paths(config) if isinstance(_val(config, p), int)] or [("process", "user", "uid")]
    return [(rng.choice(nums), rng.choice(HUGE))]


def _string(rng, config):
    strs = [p for p in all_paths(config) if isinstance(_val(config, p), str)] or [("hostname",)]
    return [(rng.choice(strs), rng.choice(STRINGS))]


def _val(config, path):
    try:
        return get(config, path)
    except (KeyError, IndexError, TypeError):
        return None


def _append(config, path):
    """The path of one more item at the end of the array at `path` (or a new one)."""
    items = _val(config, path)
    return path + (len(items) if isinstance(items, list) else 0,)


def _namespace(rng, config, keep_mount=False):
    nss = _val(config, ("linux", "namespaces"))
    nss = nss if isinstance(nss, list) else []
    choice = rng.randrange(4)
    if choice == 0:   # a duplicate, or one more of the known types
        return [(_append(config, ("linux", "namespaces")), {"type": rng.choice(NAMESPACES)})]
    if choice == 1:   # unknown, or a path
        return [(_append(config, ("linux", "namespaces")),
                 rng.choice([{"type": rng.choice(["foo", "", "PID", "net"])},
                             {"type": rng.choice(NAMESPACES), "path": rng.choice(STRINGS)},
                             {"type": "network", "path": "/proc/self/ns/net"},
                             {"type": "uts", "path": "/proc/self/ns/net"}]))]
    droppable = [i for i, ns in enumerate(nss)
                 if not (keep_mount and isinstance(ns, dict) and ns.get("type") == "mount")]
    if choice == 2 and droppable:  # share one with the host (or the fuzz driver's namespace)
        i = rng.choice(droppable)
        return [(("linux", "namespaces"), [ns for j, ns in enumerate(nss) if j != i])]
    # a user namespace with maps, good or bad
    size = rng.choice([1, 65536, 0, 2**32, -1])
    host = rng.choice([0, 100000, 2**32 - 1, -5])
    maps = [{"containerID": 0, "hostID": host, "size": size}]
    if rng.random() < 0.3:
        maps.append({"containerID": 0, "hostID": 1, "size": 1})   # overlapping
    edits = [(_append(config, ("linux", "namespaces")), {"type": "user"}),
             (("linux", "uidMappings"), maps), (("linux", "gidMappings"), rng.choice([maps, [], "x"]))]
    return edits


def _mount(rng, config):
    mounts = _val(config, ("mounts",))
    if isinstance(mounts, list) and mounts and rng.random() < 0.5:
        i = rng.randrange(len(mounts))
        return [(("mounts", i, "options"), [rng.choice(MOUNT_OPTIONS) for _ in range(rng.randint(1, 3))])]
    dest = rng.choice(["/tmp", "/mnt/x", "/escape/x", "/loop/x", "/abs/x", "/bin/sh", "/tmp/../../x",
                       "/proc/x", "/sys/fs/cgroup", "/dev/null", "/", "/\u2603", "/dev/pts/../../tmp"])
    kind = rng.choice(["tmpfs", "bind", "proc", "bogusfs", "sysfs", "mqueue"])
    source = rng.choice(["tmpfs", "/tmp", "/nonexistent", "/proc", "/etc/hostname", "relative", "/dev/null"])
    opts = [rng.choice(MOUNT_OPTIONS) for _ in range(rng.randint(0, 3))]
    if kind == "bind":
        opts.append(rng.choice(["bind", "rbind"]))
    return [(_append(config, ("mounts",)), {"destination": dest, "type": kind, "source": source,
                                             "options": opts})]


def _seccomp(rng, config):
    rules = [{"names": [rng.choice(SYSCALLS) for _ in range(rng.randint(1, 3))],
              "action": rng.choice(ACTIONS)}]
    if rng.random() < 0.3:
        rules[0]["args"] = [{"index": rng.choice([0, 5, 6, -1]), "value": rng.choice([0, 2**64, -1]),
                             "op": rng.choice(["SCMP_CMP_EQ", "SCMP_CMP_BOGUS", "SCMP_CMP_MASKED_EQ"])}]
    if rng.random() < 0.3:
        rules[0]["errnoRet"] = rng.choice([1, 0, 70000, -1])
    prof = {"defaultAction": rng.choice(["SCMP_ACT_ALLOW"] * 4 + ACTIONS),
            "architectures": rng.choice([[], ["SCMP_ARCH_X86_64"], ["SCMP_ARCH_BOGUS"]]),
            "syscalls": rules}
    return [(("linux", "seccomp"), prof)]


def _hook(rng, config, hang=True):
    kind = rng.choice(["prestart", "createRuntime", "createContainer", "startContainer",
                       "poststart", "poststop", "bogusKind"])
    hook = rng.choice([
        {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]},
        {"path": "/bin/true"},
        {"path": "relative/hook"},
        {"path": "/nonexistent/hook"},
        {"path": "/bin/sh", "args": ["sh", "-c", "cat >/dev/null"], "timeout": rng.choice([1, 0, -1, 2**64])},
    ] + ([{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}] if hang else []))
    return [(("hooks",), {kind: [hook]})]


def _limits(rng, config):
    res = rng.choice([
        {"memory": {"limit": rng.choice([-1, 1, 4096, 2**62, 64 << 20]), "kernel": rng.choice([0, 1 << 25]),
                    "kernelTCP": rng.choice([0, 1 << 24]), "swap": rng.choice([0, -1, 1])}},
        {"pids": {"limit": rng.choice([-1, 0, 1, 2**62])}},
        {"cpu": {"shares": rng.choice([0, 1, 2**63]), "quota": rng.choice([-1, 1, 1000]),
                 "cpus": rng.choice(["0", "", "99999", "x"])}},
        {"blockIO": {"weight": rng.choice([10, 0, 65535, 70000])}},
        {"hugepageLimits": [{"pageSize": rng.choice(["2MB", "bogus"]), "limit": 1 << 21}]},
        {"unified": {"memory.max": "1M"}},
    ])
    return [(("linux", "resources", k), v) for k, v in res.items()]


def _process_bits(rng, config):
    return rng.choice([
        [(("process", "rlimits"), [{"type": rng.choice(["RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_BOGUS"]),
                                    "soft": rng.choice([0, 1, 1024, 2**64 - 1]),
                                    "hard": rng.choice([0, 1024, 2**64 - 1])}])],
        [(("process", "cwd"), rng.choice(["/tmp", "/escape", "/loop", "/abs", "/bin/sh", "/nonexistent/deep",
                                          "/proc/self/fd/3", "/../..", "/\u2603"]))],
        [(("process", "user"), {"uid": rng.choice([0, 1000, 65534, 2**32 - 1]), "gid": rng.choice([0, 5]),
                                "additionalGids": rng.choice([[], [1, 2], [2**32]])})],
        [(("process", "capabilities", rng.choice(["bounding", "effective", "permitted", "ambient",
                                                  "inheritable"])),
          rng.choice([["CAP_SYS_ADMIN"], ["CAP_BOGUS"], [], ["CAP_KILL", "CAP_KILL"]]))],
        [(("process", "env"), rng.choice([["A=1"], ["NOEQUALS"], ["=x"], ["PATH=/nonexistent"]]))],
        [(("process", "args"), rng.choice([["true"], ["/bin/false"], ["nosuch"], ["sh", "-c", "exit 7"]]))],
        [(("process", "oomScoreAdj"), rng.choice([0, 1000, 1001, -1000]))],
        [(("linux", "sysctl"), rng.choice([{"net.ipv4.ip_forward": "1"}, {"kernel.pid_max": "1"},
                                           {"net..x": "1"}, {"net.core.bogus": "1"},
                                           {"kernel.shmmax": "1"}]))],
        [(("linux", "devices"), [{"type": rng.choice(["c", "b", "p", "x"]), "path": rng.choice(["/dev/fz", "/dev/../x", "/escape/x"]),
                                  "major": rng.choice([1, 4096]), "minor": rng.choice([3, 2**20]),
                                  "fileMode": rng.choice([438, -1, 2**32])}])],
        [(("linux", "maskedPaths"), [rng.choice(["/escape", "/loop", "/proc/x/../..", "/etc"])])],
        [(("linux", "readonlyPaths"), [rng.choice(["/escape", "/tmp", "/loop/x", "/etc"])])],
        [(("linux", "rootfsPropagation"), rng.choice(["shared", "bogus", "private", "rslave"]))],
        [(("linux", "cgroupsPath"), rng.choice(["..", "/", "../../x", "a/b/c", "\u2603", 5]))],
        [(("hostname",), rng.choice(["x" * 65, "fuzz", "", "\u2603"]))],
        [(("linux", "mountLabel"), "system_u:object_r:container_file_t:s0")],
        [(("linux", "timeOffsets"), {"monotonic": {"secs": 1}})],
        [(("linux", "personality"), {"domain": rng.choice(["LINUX32", "BOGUS"])})],
        [(("root", "readonly"), rng.choice([False, True]))],
        [(("ociVersion",), rng.choice(["1.3.0", "0.9.0", "2.0.0", "1.2.1", "x"]))],
        [(("annotations",), {"": "x"} if rng.random() < 0.3 else {"k": "v"})],
    ])


VALIDATION_EDITS = [_delete, _swap_type, _number, _string, _namespace, _mount, _seccomp,
                    lambda rng, c: _hook(rng, c, hang=False), _limits, _process_bits]
# For real containers: edits the phases meet (no blind type swaps: those stop at validation,
# which the in-process cases cover 10x faster). Dropping the mount namespace is one of them since
# the no-mount-namespace design landed (chroot, no mount at all); the driver's own private mount
# namespace is what such a case shares. KEEP_MOUNT_NAMESPACE = True would spare it again.
KEEP_MOUNT_NAMESPACE = False
CONTAINER_EDITS = [lambda rng, c: _namespace(rng, c, keep_mount=KEEP_MOUNT_NAMESPACE), _mount, _mount, _seccomp,
                   _hook, _limits, _process_bits, _process_bits]


def container_edits(rng, config, bundle, tries=5):
    """Edits for a real container, biased towards configs validation lets through (3 in 4 are
    drawn again if refused): what is refused is the in-process cases' job, ten times faster."""
    for _ in range(tries):
        edits = edits_for(rng, config, CONTAINER_EDITS, rng.choice([1, 1, 2, 3]))
        if judge_validation(apply(config, edits), bundle)[0] == "ok" or rng.random() < 0.25:
            break
    return edits


def edits_for(rng, config, kinds, count):
    """`count` random edits of the given kinds, each chosen knowing the edits before it."""
    edits = []
    for _ in range(count):
        edits += rng.choice(kinds)(rng, apply(config, edits))
    return edits


# ---- judging an outcome ---------------------------------------------------------------------------

# A JSON path as mrunc prints it: name(.name | [3] | ["key"])*
_PATH = r'[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])*'
PATH_RE = re.compile(rf"({_PATH}): ")


def parse_path(text):
    """'mounts[3].options' -> ("mounts", 3, "options"); map keys come back as their strings."""
    parts = []
    for m in re.finditer(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]', text):
        name, index, key = m.groups()
        parts.append(name if name is not None else int(index) if index is not None else json.loads(key))
    return tuple(parts)


def resolves(config, parts):
    try:
        get(config, parts)
        return True
    except (KeyError, IndexError, TypeError):
        return False


def _absent_member(config, parts):
    """A message about a member that is missing ("required") names it in an object that is there."""
    if not parts or not resolves(config, parts[:-1]):
        return False
    parent = get(config, parts[:-1])
    return isinstance(parent, dict) and parts[-1] not in parent


def path_problem(config, message):
    """None if `message` starts with a JSON path of this config (or names what is required in an
    object that is there), else what is wrong with it."""
    if "\n" in message:
        return f"more than one line: {message!r}"
    if message.startswith("config.json: "):
        return None
    m = PATH_RE.match(message)
    if not m:
        return f"does not start with a JSON path: {message!r}"
    parts = parse_path(m.group(1))
    missing = ": required" in message or ": must have" in message
    if resolves(config, parts) or (missing and _absent_member(config, parts)):
        return None
    return f"names {m.group(1)}, which is not in the config: {message!r}"


def judge_validation(config, bundle):
    """Run spec.validate in-process: (outcome, warnings, problem or None). outcome is "ok" or the
    error message."""
    from mrunc import spec
    from mrunc.errors import SpecError
    warnings = []
    try:
        spec.validate(config, bundle, warn=warnings.append)
    except SpecError as e:
        return str(e), warnings, path_problem(config, str(e))
    except Exception as e:  # noqa: BLE001 — any other exception is the bug we hunt
        import traceback
        return f"{type(e).__name__}: {e}", warnings, "exception: " + traceback.format_exc(limit=4)
    dupes = sorted({w for w in warnings if warnings.count(w) > 1})
    bad = [w for w in warnings if path_problem(config, w)]
    if dupes or bad:
        return "ok", warnings, f"warnings repeated {dupes} or without a path {bad}"
    return "ok", warnings, None


def dumps(config):
    """config.json text as an engine would write it: lone surrogates escaped, NaN/Infinity as
    Python's json writes them (mrunc must refuse those too, with one line)."""
    return json.dumps(config)


def make_fuzz_rootfs(busybox_rootfs, where):
    """A copy of the busybox rootfs (symlinks to one binary: cheap) with traps for path handling:
    /escape -> ../../../.., /loop -> loop, /abs -> /etc, /bin/sh as a file in the way."""
    import shutil
    root = os.path.join(where, "rootfs")
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    os.symlink("../../../..", os.path.join(root, "escape"))
    os.symlink("loop", os.path.join(root, "loop"))
    os.symlink("/etc", os.path.join(root, "abs"))
    return root
