"""The named checks behind `mrunc.spec.validate`: one small function per area of config.json.

Each check takes (config, bundle, warn), raises SpecError whose message starts with the JSON path
of the offending value (`linux.namespaces[2].type: unknown namespace "foo"`), and calls
warn(message) for what the spec says to log but not refuse. CHECKS runs them in order; the first
failure wins, so the user fixes one line at a time, like runc's validator.

Three rules shape every check:
- Unknown properties are ignored (spec: a runtime MUST NOT fail on them), so checks only look up
  the keys they know, never iterate a config object's keys — except in maps whose keys are data
  (sysctl, annotations, hooks, unified).
- `null` is the same as absent: JSON writers emit `"seccomp": null` for "not set".
- Checks test shape and what can be judged from the file alone. Whether the kernel takes a value
  (a cgroup file, a device number) is for the phase that applies it.
"""

import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from mrunc import fastjson, paths
from mrunc.errors import SpecError

from .consts import (CAPABILITIES, CAPABILITY_SETS, NAMESPACE_TYPES, OCI_VERSION_MAX,
                     OCI_VERSION_MIN, RLIMITS)
from .mountopts import PROPAGATION_FLAGS, UNSUPPORTED_MOUNT_OPTIONS

# Spec fields mrunc does not implement yet. Our rule is that a field we accept must have its
# effect, so each one present (and not null or empty) is refused as "<path>: not supported by
# mrunc yet". "[]" means "in every item of this array". Delete a line the day its feature lands.
UNSUPPORTED = (
    "process.apparmorProfile",
    "process.selinuxLabel",
    "process.execCPUAffinity",
    "mounts[].uidMappings",
    "mounts[].gidMappings",
    "linux.intelRdt",
    "linux.memoryPolicy",
    "linux.netDevices",
    "linux.resources.rdma",  # features() says cgroup rdma: false
)

# Integer kinds: (lowest, highest, name used in "expected <name>, got -1"). A name of None gives
# "must be between lo and hi" instead, for ranges that are rules rather than C types.
U16 = (0, 2**16 - 1, "unsigned 16-bit integer")
U32 = (0, 2**32 - 1, "unsigned 32-bit integer")
U64 = (0, 2**64 - 1, "unsigned 64-bit integer")
I64 = (-2**63, 2**63 - 1, "64-bit integer")
# A uid or gid: 32 bits, but 4294967295 is (uid_t)-1, "no id", which setuid(2) refuses.
ID = (0, 2**32 - 2, "user or group id (0 to 4294967294)")
POSITIVE = (1, 2**63 - 1, "positive integer")

# A user namespace takes at most 340 lines per map (Linux 4.15+).
MAX_ID_MAPPINGS = 340


# ---- helpers: each checks one value and names it by its path -------------------------------------

def _fail(path, message):
    raise SpecError(f"{path}: {message}")


def _show(value):
    """A bad value as the user wrote it: scalars in JSON spelling, containers by their JSON type."""
    if isinstance(value, str):
        return fastjson.dumps(value if len(value) <= 100 else value[:97] + "...")
    if isinstance(value, bool) or value is None:
        return fastjson.dumps(value)
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return repr(value)


def _expect(value, path, kind, name):
    """`value` if it is a `kind` (JSON's `name`), else the error saying what came instead."""
    if not isinstance(value, kind):
        _fail(path, f"expected {name}, got {_show(value)}")
    return value


def _obj(value, path):
    """An object, or {} for absent/null; anything else is an error."""
    return {} if value is None else _expect(value, path, dict, "object")


def _item(value, path):
    """An array element that must be an object: `null` there is not "absent", it is a mistake."""
    return _expect(value, path, dict, "object")


def _arr(value, path):
    """An array, or [] for absent/null."""
    return [] if value is None else _expect(value, path, list, "array")


def _str(value, path):
    return _expect(value, path, str, "string")


def _bool(value, path):
    return _expect(value, path, bool, "boolean")


def _int(value, path, kind=I64):
    # bool is a subclass of int in Python, but `true` is not an integer in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"expected integer, got {_show(value)}")
    lo, hi, name = kind
    if not lo <= value <= hi:
        _fail(path, f"expected {name}, got {value}" if name else
              f"must be between {lo} and {hi}, got {value}")
    return value


def _abspath(value, path):
    if not _str(value, path).startswith("/"):
        _fail(path, f"must be an absolute path, got {_show(value)}")
    return value


def _required(obj, key, path):
    value = obj.get(key)
    if value is None:
        _fail(f"{path}.{key}", "required")
    return value


def _known(obj, key, path, known, what):
    """obj[key]: required, a string, and one of `known` (else: unknown <what> "…")."""
    value = _str(_required(obj, key, path), f"{path}.{key}")
    if value not in known:
        _fail(f"{path}.{key}", f"unknown {what} {_show(value)}")
    return value


def _strings(value, path):
    """An array of strings, or [] for absent/null."""
    items = _arr(value, path)
    for i, item in enumerate(items):
        _str(item, f"{path}[{i}]")
    return items


def _env(value, path):
    for i, entry in enumerate(_strings(value, path)):
        key, equals, _ = entry.partition("=")
        if not key or not equals:  # no "=", or "=x": execve(2) would have no name for it
            _fail(f"{path}[{i}]", f'must be "KEY=VALUE", got {_show(entry)}')


def _fields(obj, path, kinds):
    """Type-check the optional members of obj listed in kinds ({name: bool | str | int kind})."""
    for name, kind in kinds.items():
        value = obj.get(name)
        if value is None:
            continue
        if kind is bool:
            _bool(value, f"{path}.{name}")
        elif kind is str:
            _str(value, f"{path}.{name}")
        else:
            _int(value, f"{path}.{name}", kind)


def _key(path, key):
    """Path of a map entry whose key is data: linux.sysctl["net.ipv4.ip_forward"]."""
    return f"{path}[{fastjson.dumps(key)}]"


def _linux(config):
    return _obj(config.get("linux"), "linux")


def _namespaces(config):
    """{type: path or None} of the validated linux.namespaces (run after check_namespaces)."""
    found = {}
    for ns in (config.get("linux") or {}).get("namespaces") or ():
        found[ns["type"]] = ns.get("path") or None
    return found


def shared_with_host(config):
    """The namespace types the container shares with the runtime — with the host, for a runtime
    run on the host: those linux.namespaces does not list, and those joined by a path that is the
    runtime's own namespace (`/proc/1/ns/uts` or `/proc/self/ns/uts` for root on the host). A path
    is compared by inode with /proc/self/ns/<type>, now, at validation time: the name can be
    anything (a bind mount under /run/netns…), the inode says which namespace it is."""
    from mrunc.linux import NAMESPACES
    found = _namespaces(config)
    return {kind for kind in NAMESPACE_TYPES
            if kind not in found or (found[kind] and
                                     _same_file(found[kind], f"/proc/self/ns/{NAMESPACES[kind][1]}"))}


def without_own_mount_namespace(config):
    """Why the container has no mount namespace of its own (None when it has one).

    Only a mount namespace mrunc unshares itself is the container's own: a new one starts as a
    copy, and whatever init mounts, pivots or remounts in it stays in it. A mount namespace joined
    by path is somebody else's tree — the host's, or another container's, whose processes would
    see their "/" replaced by pivot_root and our mounts appear — so it counts as not ours, even if
    it is not the runtime's own."""
    found = _namespaces(config)
    if "mount" not in found:
        return 'linux.namespaces has no "mount" entry: it would change the host\'s mounts'
    if found["mount"]:
        return (f'the mount namespace is joined by path ({found["mount"]}): it would change the '
                f'mounts of whoever owns it')
    return None


def _find(node, parts, where):
    """Yield (json path, value) for the dotted path split in parts; "name[]" walks an array."""
    if not parts:
        yield where, node
        return
    if not isinstance(node, dict):
        return
    name, rest = parts[0], parts[1:]
    prefix = f"{where}." if where else ""
    if name.endswith("[]"):
        items = node.get(name[:-2])
        for i, item in enumerate(items if isinstance(items, list) else ()):
            yield from _find(item, rest, f"{prefix}{name[:-2]}[{i}]")
    elif name in node:
        yield from _find(node[name], rest, prefix + name)


# ---- the checks, in the order CHECKS runs them ------------------------------------------------------

def version_numbers(text):
    """(major, minor, patch) of a SemVer string such as "1.0.2-dev", or None if it is not one."""
    parts = text.partition("-")[0].partition("+")[0].split(".")
    if len(parts) != 3 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    return tuple(map(int, parts))


_MIN = version_numbers(OCI_VERSION_MIN)
_MAX = version_numbers(OCI_VERSION_MAX)


def check_version(config, bundle, warn):
    """ociVersion: the spec version the bundle was written for; it must be one we implement."""
    version = config.get("ociVersion")
    if version is None:
        _fail("ociVersion", "required")
    numbers = version_numbers(version) if isinstance(version, str) else None
    if not numbers:
        _fail("ociVersion", f"{_show(version)} is not a valid version")
    # The pre-release suffix is ignored: tools still write "1.0.2-dev", and old bundles say
    # "1.0.0-rc5". Any 1.3.x is accepted: patch releases of the spec add no fields.
    if numbers < _MIN:
        _fail("ociVersion", f"{version} is older than supported {OCI_VERSION_MIN}")
    if numbers[:2] > _MAX[:2]:
        _fail("ociVersion", f"{version} is newer than supported {OCI_VERSION_MAX}")


def check_strings(config, bundle, warn):
    """Every string, keys included, must be real Unicode, and — where it goes to the kernel — hold
    no NUL. JSON's `\\ud800` escape decodes to half of a UTF-16 pair, which no UTF-8 file can
    hold (config.json is UTF-8) and no syscall can take; a `\\u0000` would cut a path, an
    argument or a syscall name short where C reads it. Refused here, once, with the path, rather
    than wherever a phase would first trip on it. (annotations are only stored: NUL is fine there.)"""
    if _maybe_bad_strings(config):  # the fast pass; the slow one (rarechecks) builds paths
        from .rarechecks import bad_string
        bad = bad_string(config, "config.json")
        if bad:
            _fail(*bad)


def _maybe_bad_strings(config):
    """True if some string (or key) holds a NUL or something that is not ASCII (then it may be
    a lone surrogate). Builds no paths: validation runs on every create."""
    todo = [config]
    while todo:
        node = todo.pop()
        if isinstance(node, str):
            if not node.isascii() or "\0" in node:
                return True
        elif isinstance(node, dict):
            todo += node.values()
            if not all(k.isascii() and "\0" not in k for k in node):
                return True
        elif isinstance(node, list):
            todo += node
    return False


def check_unsupported(config, bundle, warn):
    """Refuse the fields of UNSUPPORTED: ignoring one would run a container that lacks what its
    config asked for (a seccomp filter, an AppArmor profile…) and nobody would notice."""
    for dotted in UNSUPPORTED:
        for path, value in _find(config, dotted.split("."), ""):
            if value is not None and value != "" and value != [] and value != {}:
                _fail(path, "not supported by mrunc yet")


def selinux_enabled():
    """SELinux is on when its filesystem is mounted (what libselinux's is_selinux_enabled asks)."""
    return paths.exists("/sys/fs/selinux/enforce")


def check_mount_label(config, bundle, warn):
    """linux.mountLabel: the SELinux context of the container's mounts. mrunc cannot label
    mounts, so on a host with SELinux it is refused (the container would run unlabelled). On a
    host without SELinux no mount of anyone's has a label, and there is nothing to honour: like
    crun we say so and go on (runc refuses; engines send the field whatever the host)."""
    label = _linux(config).get("mountLabel")
    if label is None or _str(label, "linux.mountLabel") == "":
        return
    if selinux_enabled():
        _fail("linux.mountLabel", "not supported by mrunc yet (this host has SELinux)")
    warn("linux.mountLabel: ignored: SELinux is not enabled on this host")


def check_root(config, bundle, warn):
    """root.path: the directory that becomes the container's /, relative to the bundle or absolute."""
    root = config.get("root")
    if root is None:
        _fail("root", "required")
    root = _obj(root, "root")
    path = _str(_required(root, "path", "root"), "root.path")
    _fields(root, "root", {"readonly": bool})
    full = paths.join(paths.abspath(bundle), path)  # join() keeps `path` if it is absolute
    if not path or not paths.isdir(full):
        _fail("root.path", f"{fastjson.dumps(full)} does not exist or is not a directory")


def check_process(config, bundle, warn):
    """process: what init execs. The spec allows it to be absent until `start`, but mrunc always
    starts what it creates, so it is needed now."""
    process = config.get("process")
    if process is None:
        _fail("process", "required")
    process_fields(process, "process", warn)


def process_fields(process, path, warn):
    """Check a process object (config.json's, or `exec --process`'s, whose path is different)."""
    process = _obj(process, path)
    args = _strings(process.get("args"), f"{path}.args")
    if not args:
        _fail(f"{path}.args", "must have at least one entry")
    if not args[0]:
        _fail(f"{path}.args[0]", "must not be empty")
    cwd = _abspath(_required(process, "cwd", path), f"{path}.cwd")
    if (paths.normpath(cwd).rstrip("/") + "/").startswith("/proc/"):
        # /proc/self/fd/N, /proc/1/cwd…: magic links to wherever a process's fds and cwd are —
        # on the host, for the runtime's own (CVE-2024-21626). No real program needs to start there.
        _fail(f"{path}.cwd", f"{_show(cwd)} is inside /proc: refused")
    _env(process.get("env"), f"{path}.env")
    _fields(process, path, {"terminal": bool, "noNewPrivileges": bool,
                            "oomScoreAdj": (-1000, 1000, None)})
    size = process.get("consoleSize")
    if size is not None:
        size = _obj(size, f"{path}.consoleSize")
        for key in ("height", "width"):  # a struct winsize holds unsigned shorts
            _int(_required(size, key, f"{path}.consoleSize"), f"{path}.consoleSize.{key}", U16)
    _user(process.get("user"), f"{path}.user")
    _rlimits(process.get("rlimits"), f"{path}.rlimits")
    _capabilities(process.get("capabilities"), f"{path}.capabilities")
    if process.get("scheduler") is not None or process.get("ioPriority") is not None:
        from .rarechecks import io_priority, scheduler
        scheduler(process.get("scheduler"), f"{path}.scheduler")
        io_priority(process.get("ioPriority"), f"{path}.ioPriority")


def _user(user, path):
    # The spec's schema no longer requires `user` (absent = uid 0, gid 0, as Go runtimes read it);
    # but when it is given, uid and gid are.
    if user is None:
        return
    user = _obj(user, path)
    for key in ("uid", "gid"):
        _int(_required(user, key, path), f"{path}.{key}", ID)
    _fields(user, path, {"umask": (0, 0o777, None)})
    for i, gid in enumerate(_arr(user.get("additionalGids"), f"{path}.additionalGids")):
        _int(gid, f"{path}.additionalGids[{i}]", ID)


def _rlimits(rlimits, path):
    seen = set()
    for i, rlimit in enumerate(_arr(rlimits, path)):
        at = f"{path}[{i}]"
        rlimit = _item(rlimit, at)
        kind = _known(rlimit, "type", at, RLIMITS, "rlimit")
        if kind in seen:  # the spec: duplicates MUST be an error (which one would win?)
            _fail(f"{at}.type", f"duplicate rlimit {_show(kind)}")
        seen.add(kind)
        soft = _int(_required(rlimit, "soft", at), f"{at}.soft", U64)
        hard = _int(_required(rlimit, "hard", at), f"{at}.hard", U64)
        if soft > hard:  # setrlimit(2) would say EINVAL; say which numbers instead
            _fail(f"{at}.soft", f"{soft} is above the hard limit {hard}")


def _capabilities(capabilities, path):
    capabilities = _obj(capabilities, path)
    for kind in CAPABILITY_SETS:
        for i, name in enumerate(_strings(capabilities.get(kind), f"{path}.{kind}")):
            if name not in CAPABILITIES:
                # Not a name of capabilities(7): a typo, and a typo in a security setting is an
                # error (runtime-spec 1.0's MUST; the validation suite checks it). A real name this
                # kernel lacks is another matter: the security phase skips it with one warning.
                _fail(f"{path}.{kind}[{i}]", f"unknown capability {_show(name)}")


def check_namespaces(config, bundle, warn):
    """linux.namespaces: each listed type is new (no path) or joined (path); absent = the host's."""
    seen = set()
    for i, ns in enumerate(_arr(_linux(config).get("namespaces"), "linux.namespaces")):
        at = f"linux.namespaces[{i}]"
        ns = _item(ns, at)
        kind = _known(ns, "type", at, NAMESPACE_TYPES, "namespace")
        if kind in seen:
            _fail(f"{at}.type", f"duplicate namespace {_show(kind)}")
        seen.add(kind)
        # "" is how Go runtimes spell "no path", and engines written in Go may emit it.
        if ns.get("path"):
            _abspath(ns["path"], f"{at}.path")


def check_id_mappings(config, bundle, warn):
    """linux.uid/gidMappings: the id maps of a new user namespace, written by the parent."""
    linux = _linux(config)
    namespaces = _namespaces(config)
    for key in ("uidMappings", "gidMappings"):
        path = f"linux.{key}"
        mappings = _arr(linux.get(key), path)
        for i, mapping in enumerate(mappings):
            at = f"{path}[{i}]"
            mapping = _item(mapping, at)
            _int(_required(mapping, "containerID", at), f"{at}.containerID", U32)
            _int(_required(mapping, "hostID", at), f"{at}.hostID", U32)
            _int(_required(mapping, "size", at), f"{at}.size", (1, 2**32 - 1, None))
        if len(mappings) > MAX_ID_MAPPINGS:
            _fail(path, f"{len(mappings)} entries, the kernel takes at most {MAX_ID_MAPPINGS}")
        if "user" not in namespaces:
            if mappings:
                _fail(path, 'set, but linux.namespaces has no "user" namespace')
        elif not mappings and namespaces["user"] is None:
            # A new user namespace without a map runs everything as the overflow id 65534, and
            # nothing (not even setuid(0)) works: certainly a mistake. A joined one has its maps.
            _fail(path, "required with a new user namespace")


def check_uts(config, bundle, warn):
    """hostname/domainname: set with sethostname(2) in the container's own UTS namespace."""
    for key in ("hostname", "domainname"):
        value = config.get(key)
        if value is None:
            continue
        _str(value, key)
        if value and "uts" in shared_with_host(config):
            # Without its own UTS namespace the container would rename the host. A path to the
            # runtime's own UTS namespace is the same thing, spelled differently.
            _fail(key, f"unable to set {key} without a private UTS namespace")
        if len(value.encode()) > 64:
            _fail(key, f"{len(value.encode())} bytes, the kernel takes at most 64")


def check_mounts(config, bundle, warn):
    """mounts: mounted in order on top of the rootfs; options are flags, propagation or fs data."""
    for i, mount in enumerate(_arr(config.get("mounts"), "mounts")):
        at = f"mounts[{i}]"
        mount = _item(mount, at)
        destination = _str(_required(mount, "destination", at), f"{at}.destination")
        if not destination.startswith("/"):
            # Spec 1.2 allows a relative destination (taken relative to /) but deprecates it.
            # We refuse it: it is almost always a typo, and "/" makes the intent plain.
            _fail(f"{at}.destination",
                  f"must be an absolute path, got {_show(destination)} (relative destinations are deprecated)")
        if paths.normpath(destination) in ("/", "//"):
            # on top of the root filesystem itself: everything mounted, made or checked in the
            # rootfs afterwards would land in that filesystem instead (runc refuses it too)
            _fail(f"{at}.destination", f"{_show(destination)} would cover the container's root "
                                       "filesystem (set root.path instead)")
        _fields(mount, at, {"source": str, "type": str})
        bind = False
        for j, option in enumerate(_strings(mount.get("options"), f"{at}.options")):
            if not option:
                _fail(f"{at}.options[{j}]", "must not be empty")
            if option in UNSUPPORTED_MOUNT_OPTIONS:
                _fail(f"{at}.options[{j}]", f"{_show(option)} is not supported by mrunc yet")
            bind = bind or option in ("bind", "rbind")
        if bind and not mount.get("source"):
            _fail(f"{at}.source", "required for a bind mount")


def _same_file(a, b):
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:  # a missing namespace path is reported when the clone phase opens it
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_masked_paths(config, bundle, warn):
    """linux.maskedPaths / readonlyPaths: container paths hidden, or remounted read-only."""
    linux = _linux(config)
    for key in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(_arr(linux.get(key), f"linux.{key}")):
            _abspath(path, f"linux.{key}[{i}]")


def check_rootfs_propagation(config, bundle, warn):
    """linux.rootfsPropagation: how mounts propagate between the rootfs and the host."""
    value = _linux(config).get("rootfsPropagation")
    if value:  # "" is Go's "unset"
        if _str(value, "linux.rootfsPropagation") not in PROPAGATION_FLAGS:
            _fail("linux.rootfsPropagation",
                  f"must be one of {', '.join(PROPAGATION_FLAGS)}, got {_show(value)}")


def check_without_mount_namespace(config, bundle, warn):
    """Without a mount namespace of its own, the container shares a mount table: nothing may be
    mounted, remounted or made in /dev. Then init never calls pivot_root or mount(2) and enters
    the rootfs with chroot (see mrunc.rootfs.pivot). Whatever needs a mount is refused here,
    before anything exists, rather than done to the host's tree (runc refuses masked and
    read-only paths the same way; it still mounts the rest)."""
    why = without_own_mount_namespace(config)
    if why is None:
        return
    linux = _linux(config)
    needs = [("mounts", _arr(config.get("mounts"), "mounts"), "cannot mount"),
             ("linux.maskedPaths", linux.get("maskedPaths"), "cannot mask paths"),
             ("linux.readonlyPaths", linux.get("readonlyPaths"), "cannot make paths read-only"),
             # mknod in the rootfs would make the node on the host's disk, for anyone who can reach it
             ("linux.devices", linux.get("devices"), "cannot create device nodes"),
             ("linux.rootfsPropagation", linux.get("rootfsPropagation"),
              "cannot set the propagation of the root"),
             ("root.readonly", _obj(config.get("root"), "root").get("readonly"),
              "cannot make the root read-only")]
    for path, value, what in needs:
        if value:
            _fail(f"{path}[0]" if isinstance(value, list) else path,
                  f"{what} without a new mount namespace ({why})")


def check_cgroup_mounts(config, bundle, warn):
    """A cgroup filesystem in a container without a cgroup namespace of its own (none, or one
    joined by path) shows a tree that is not the container's: the host's, bound down to the
    container's own directories (v1, user namespaces), or another container's. It is mounted
    read-only whatever its options say (mrunc.rootfs.mounts): writable, the container could raise
    its own limits or move any process it can name into its cgroup. An explicit "rw" is refused
    here rather than quietly dropped (S15)."""
    found = _namespaces(config)
    if "cgroup" in found and not found["cgroup"]:
        return
    why = ('linux.namespaces has no "cgroup" entry' if "cgroup" not in found
           else "the cgroup namespace is joined by path")
    for i, mount in enumerate(_arr(config.get("mounts"), "mounts")):
        opts = mount.get("options") or []
        if mount.get("type") not in ("cgroup", "cgroup2") or {"bind", "rbind"} & set(opts):
            continue
        last = max((j for j, o in enumerate(opts) if o in ("ro", "rw")), default=None)
        if last is not None and opts[last] == "rw":
            _fail(f"mounts[{i}].options[{last}]", f'"rw" on a cgroup filesystem needs a new cgroup '
                  f"namespace ({why}): the cgroup tree would be writable from the container")


def check_annotations(config, bundle, warn):
    """annotations: free string -> string metadata for tools; mrunc only stores it in the state."""
    for key, value in _obj(config.get("annotations"), "annotations").items():
        if not key:
            _fail("annotations", "keys must not be empty")
        if value is not None:
            _str(value, _key("annotations", key))


def check_resources(config, bundle, warn):
    """linux.resources and cgroupsPath: shapes only; the cgroups phase judges values."""
    linux = _linux(config)
    _fields(linux, "linux", {"cgroupsPath": str})
    resources_fields(linux.get("resources"), "linux.resources")


_MEMORY = {"limit": I64, "reservation": I64, "swap": I64, "kernel": I64, "kernelTCP": I64,
           "swappiness": U64, "disableOOMKiller": bool, "useHierarchy": bool,
           "checkBeforeUpdate": bool}
_CPU = {"shares": U64, "quota": I64, "burst": U64, "period": U64, "realtimeRuntime": I64,
        "realtimePeriod": U64, "cpus": str, "mems": str, "idle": I64}
_THROTTLES = ("throttleReadBpsDevice", "throttleWriteBpsDevice",
              "throttleReadIOPSDevice", "throttleWriteIOPSDevice")


def resources_fields(resources, path):
    """Check a resources object (config.json's, or `update --resources`'s)."""
    resources = _obj(resources, path)
    _fields(_obj(resources.get("memory"), f"{path}.memory"), f"{path}.memory", _MEMORY)
    _fields(_obj(resources.get("cpu"), f"{path}.cpu"), f"{path}.cpu", _CPU)

    pids = resources.get("pids")
    if pids is not None:
        _int(_required(_obj(pids, f"{path}.pids"), "limit", f"{path}.pids"), f"{path}.pids.limit")

    block_io = _obj(resources.get("blockIO"), f"{path}.blockIO")
    _fields(block_io, f"{path}.blockIO", {"weight": U16, "leafWeight": U16})
    for key in ("weightDevice",) + _THROTTLES:
        for i, device in enumerate(_arr(block_io.get(key), f"{path}.blockIO.{key}")):
            at = f"{path}.blockIO.{key}[{i}]"
            device = _item(device, at)
            _int(_required(device, "major", at), f"{at}.major")
            _int(_required(device, "minor", at), f"{at}.minor")
            if key == "weightDevice":
                _fields(device, at, {"weight": U16, "leafWeight": U16})
            else:
                _int(_required(device, "rate", at), f"{at}.rate", U64)

    for i, limit in enumerate(_arr(resources.get("hugepageLimits"), f"{path}.hugepageLimits")):
        at = f"{path}.hugepageLimits[{i}]"
        limit = _item(limit, at)
        _str(_required(limit, "pageSize", at), f"{at}.pageSize")
        _int(_required(limit, "limit", at), f"{at}.limit", U64)

    network = _obj(resources.get("network"), f"{path}.network")
    _fields(network, f"{path}.network", {"classID": U32})
    for i, prio in enumerate(_arr(network.get("priorities"), f"{path}.network.priorities")):
        at = f"{path}.network.priorities[{i}]"
        prio = _item(prio, at)
        _str(_required(prio, "name", at), f"{at}.name")
        _int(_required(prio, "priority", at), f"{at}.priority", U32)

    for name, rdma in _obj(resources.get("rdma"), f"{path}.rdma").items():
        at = _key(f"{path}.rdma", name)
        _fields(_obj(rdma, at), at, {"hcaHandles": U32, "hcaObjects": U32})

    for name, value in _obj(resources.get("unified"), f"{path}.unified").items():
        _str(value, _key(f"{path}.unified", name))

    for i, rule in enumerate(_arr(resources.get("devices"), f"{path}.devices")):
        at = f"{path}.devices[{i}]"
        rule = _item(rule, at)
        _bool(_required(rule, "allow", at), f"{at}.allow")
        _fields(rule, at, {"type": str, "major": I64, "minor": I64, "access": str})
        if rule.get("type") not in (None, "a", "c", "b"):
            _fail(f"{at}.type", f'must be one of "a", "c", "b", got {_show(rule["type"])}')
        access = rule.get("access")
        if access is not None and (not access or not set(access) <= set("rwm")):
            _fail(f"{at}.access", f'must be made of "r", "w" and "m", got {_show(access)}')


# ---- checks of fields few configs have: their code is loaded only when the field is there -------

def _when_present(name, module, key, top=False):
    """The check `name` of mrunc.spec.<module>, run only for a config that has linux.<key> (or
    <key>, with `top`): one without that field never reads the module's code. In CHECKS it runs
    where the check itself would, so the first failure of a config is the same one."""
    def check(config, bundle, warn):
        if (config if top else _linux(config)).get(key) is not None:
            # from .<module> import <name>, then run it
            getattr(__import__(module, globals(), None, (name,), 1), name)(config, bundle, warn)
    check.__name__ = check.__qualname__ = name      # what the trace names
    check.__doc__ = f"{'' if top else 'linux.'}{key}: mrunc.spec.{module}.{name}"
    return check


check_personality = _when_present("check_personality", "rarechecks", "personality")
check_time_offsets = _when_present("check_time_offsets", "rarechecks", "timeOffsets")
check_seccomp = _when_present("check_seccomp", "seccompcheck", "seccomp")
check_devices = _when_present("check_devices", "rarechecks", "devices")
check_sysctl = _when_present("check_sysctl", "rarechecks", "sysctl")
check_hooks = _when_present("check_hooks", "rarechecks", "hooks", top=True)


CHECKS = [
    check_strings,
    check_version,
    check_unsupported,
    check_mount_label,
    check_root,
    check_process,
    check_namespaces,
    check_id_mappings,
    check_uts,
    check_personality,
    check_time_offsets,
    check_seccomp,
    check_mounts,
    check_devices,
    check_sysctl,
    check_masked_paths,
    check_rootfs_propagation,
    check_without_mount_namespace,
    check_cgroup_mounts,
    check_annotations,
    check_hooks,
    check_resources,
]
