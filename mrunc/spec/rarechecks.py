"""The checks of fields few containers have — process.scheduler and ioPriority,
linux.personality, timeOffsets, devices and sysctl, hooks — and the slow pass that names a bad
string. mrunc.spec.checks runs each of these only when its field is present (or a string may be
bad), so a config with none of them is validated without reading this code: every create, run
and exec reads mrunc.spec.checks, and each KiB of .pyc it loads costs ≈ 5 µs of CPU. The rules
and messages are those of the other checks (mrunc.spec.checks says how they are written).
"""
from . import consts
from .checks import (I64, ID, POSITIVE, U32, U64, _abspath, _arr, _env, _fail, _fields, _item, _key,
                     _known, _linux, _namespaces, _obj, _required, _show, _str, _strings,
                     shared_with_host)
from .consts import HOOK_KINDS


def bad_string(config, top):
    """(JSON path, what is wrong) of the first bad string (for a key: its object's path and
    "a key"), else None. A loop, not recursion: the JSON parser allows nesting deeper than what
    would be left of Python's recursion limit."""
    todo = [(config, top, True)]
    while todo:
        node, path, kernel = todo.pop()
        if isinstance(node, str):
            why = _string_problem(node, kernel)
            if why:
                return path, why
        elif isinstance(node, dict):
            for key, value in reversed(node.items()):
                why = _string_problem(key, kernel)
                if why:
                    return f"{path}: a key", why
                sub = key if path == top else (f"{path}.{key}" if key.isidentifier() else
                                               _key(path, key))
                todo.append((value, sub, kernel and sub != "annotations"))
        elif isinstance(node, list):
            todo += [(value, f"{path}[{i}]", kernel) for i, value in reversed(list(enumerate(node)))]
    return None


def _string_problem(text, kernel):
    try:
        text.encode()
    except UnicodeEncodeError:
        return "not valid Unicode (a lone UTF-16 surrogate, like \\ud800)"
    if kernel and "\0" in text:
        return "contains a NUL character (\\u0000)"
    return None


def scheduler(sched, path):
    """process.scheduler: sched_setattr(2)'s arguments, by name."""
    if sched is None:
        return
    sched = _obj(sched, path)
    policy = _known(sched, "policy", path, consts.SCHED_POLICIES, "policy")
    if policy == "SCHED_ISO":
        _fail(f"{path}.policy", "SCHED_ISO is not implemented by Linux")
    _fields(sched, path, {"nice": (-20, 19, None), "priority": (0, 99, None),
                          "runtime": U64, "deadline": U64, "period": U64})
    for i, flag in enumerate(_strings(sched.get("flags"), f"{path}.flags")):
        if flag not in consts.SCHED_FLAGS:
            _fail(f"{path}.flags[{i}]", f"unknown flag {_show(flag)}")
    if policy in ("SCHED_FIFO", "SCHED_RR") and not sched.get("priority"):
        _fail(f"{path}.priority", f"{policy} needs a priority from 1 to 99")


def io_priority(prio, path):
    """process.ioPriority: ioprio_set(2) for the process."""
    if prio is None:
        return
    prio = _obj(prio, path)
    _known(prio, "class", path, consts.IOPRIO_CLASSES, "class")
    _fields(prio, path, {"priority": (0, 7, None)})


def check_personality(config, bundle, warn):
    """linux.personality: the execution domain, personality(2) — LINUX32 makes `uname -m` say i686."""
    pers = _linux(config).get("personality")
    if pers is None:
        return
    pers = _obj(pers, "linux.personality")
    domain = _str(_required(pers, "domain", "linux.personality"), "linux.personality.domain")
    if domain not in ("LINUX", "LINUX32"):
        _fail("linux.personality.domain", f"unknown domain {_show(domain)} (LINUX or LINUX32)")
    for i, flag in enumerate(_strings(pers.get("flags"), "linux.personality.flags")):
        _fail(f"linux.personality.flags[{i}]", f"unknown flag {_show(flag)} (the spec defines none)")


def check_time_offsets(config, bundle, warn):
    """linux.timeOffsets: only a *new* time namespace can get offsets (they are written once,
    before its first process enters it)."""
    offsets = _linux(config).get("timeOffsets")
    if offsets is None:
        return
    offsets = _obj(offsets, "linux.timeOffsets")
    nss = _namespaces(config)
    if offsets and ("time" not in nss or nss["time"]):
        _fail("linux.timeOffsets", "needs a new time namespace (a {\"type\": \"time\"} entry "
                                   "without a path in linux.namespaces)")
    for clock, value in offsets.items():
        where = f"linux.timeOffsets.{clock}"
        if clock not in ("monotonic", "boottime"):
            _fail(where, "unknown clock (monotonic or boottime)")
        value = _obj(value, where)
        _fields(value, where, {"secs": I64, "nanosecs": (0, 999999999, None)})


def check_devices(config, bundle, warn):
    """linux.devices: nodes to create in the container (c/u char, b block, p fifo)."""
    for i, device in enumerate(_arr(_linux(config).get("devices"), "linux.devices")):
        at = f"linux.devices[{i}]"
        device = _item(device, at)
        kind = _str(_required(device, "type", at), f"{at}.type")
        if kind not in ("c", "b", "u", "p"):
            _fail(f"{at}.type", f'must be one of "c", "b", "u", "p", got {_show(kind)}')
        _abspath(_required(device, "path", at), f"{at}.path")
        if kind != "p":  # a fifo has no device number
            _required(device, "major", at)
            _required(device, "minor", at)
        # mknod(2) takes a 32-bit dev_t: 12 bits of major, 20 of minor. fileMode is decimal in JSON.
        _fields(device, at, {"major": (0, 4095, None), "minor": (0, 2**20 - 1, None),
                             "fileMode": U32, "uid": ID, "gid": ID})


# Sysctls that live in the IPC namespace (plus every fs.mqueue.*).
_IPC_SYSCTLS = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                          "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"))


def check_sysctl(config, bundle, warn):
    """linux.sysctl: written to /proc/sys inside the container — only safe for namespaced keys.

    Most of /proc/sys is global: kernel.pid_max written "in the container" changes the host. Like
    runc we allow only the keys that belong to a namespace the container has of its own.
    """
    sysctl = _obj(_linux(config).get("sysctl"), "linux.sysctl")
    if not sysctl:
        return
    namespaces = _namespaces(config)
    for key, value in sysctl.items():
        at = _key("linux.sysctl", key)
        _str(value, at)
        # "net.ipv4.conf.eth0/100.forwarding" is legal ("/" stands for a "." in a name), but an
        # empty component ("net..x", "net/../x") would climb out of /proc/sys/net.
        if "" in key.replace("/", ".").split("."):
            _fail(at, "not a valid sysctl name")
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            need = "ipc"
        elif key.startswith("net."):
            need = "network"
        elif key == "kernel.domainname":
            need = "uts"
        elif key == "kernel.hostname":
            _fail(at, 'conflicts with the "hostname" field; set that instead')
        elif key.startswith("user."):
            need = "user"
        else:
            _fail(at, "not in a separate kernel namespace, so it would change the host")
        if need not in namespaces:
            _fail(at, f'needs a private {need} namespace (linux.namespaces has no "{need}")')
        if need in shared_with_host(config):
            _fail(at, f"not allowed in the host's {need} namespace (its path is the runtime's own)")


def check_hooks(config, bundle, warn):
    """hooks: programs the runtime runs at fixed points of the lifecycle, state JSON on stdin."""
    for kind, hooks in _obj(config.get("hooks"), "hooks").items():
        path = f"hooks.{kind}"
        if kind not in HOOK_KINDS:
            # A hook we do not know would never run; a container that depends on it must not start.
            _fail(path, f"unknown hook kind (known: {', '.join(HOOK_KINDS)})")
        for i, hook in enumerate(_arr(hooks, path)):
            at = f"{path}[{i}]"
            hook = _item(hook, at)
            _abspath(_required(hook, "path", at), f"{at}.path")
            _strings(hook.get("args"), f"{at}.args")
            _env(hook.get("env"), f"{at}.env")
            _fields(hook, at, {"timeout": POSITIVE})
