"""The check of linux.seccomp, the syscall filter: a module of its own, loaded by
mrunc.spec.checks.check_seccomp only for a config that has a filter. Its rules and messages are
those of the other checks (mrunc.spec.checks says how they are written); a plain `mrunc run`
without seccomp does not read its code (≈ 6 KiB of .pyc, on every create and run).
"""
import sys

from .checks import (U16, U64, _arr, _fail, _fields, _int, _item, _linux, _obj, _required, _show,
                     _str, _strings)


# Syscalls init itself makes between loading the filter and handing the listener fd home: a
# NOTIFY rule on one of them would block init on an agent that has no fd yet (runc refuses
# "write" for the same reason; we send the fd with sendmsg).
_NOTIFY_FORBIDDEN = ("sendmsg",)


def check_seccomp(config, bundle, warn):
    """linux.seccomp: the syscall filter. Names are checked here; whether libseccomp and the
    kernel know a syscall, an architecture or a flag is for the security phase (unknown syscall
    names are skipped there, as runc does: profiles list calls newer than many kernels)."""
    seccomp = _linux(config).get("seccomp")
    if seccomp is None:
        return
    from mrunc.linux.seccomp import ACTIONS, ARCHES, FLAGS, OPERATORS
    path = "linux.seccomp"
    seccomp = _obj(seccomp, path)

    def action(obj, at, key, errno_key):
        name = _str(_required(obj, key, at), f"{at}.{key}")
        if name not in ACTIONS:
            _fail(f"{at}.{key}", f"unknown action {_show(name)}")
        if obj.get(errno_key) is not None:
            _int(obj[errno_key], f"{at}.{errno_key}", U16)
            if not ACTIONS[name][1]:
                # the spec: MUST fail if errnoRet is set with an action that returns no errno
                _fail(f"{at}.{errno_key}", f"only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, "
                                           f"not {name}")
        return name

    default = action(seccomp, path, "defaultAction", "defaultErrnoRet")
    if default == "SCMP_ACT_NOTIFY":
        # every syscall of init's, sending the listener fd home included, would wait for an
        # agent that cannot have the fd yet
        _fail(f"{path}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    for i, arch in enumerate(_strings(seccomp.get("architectures"), f"{path}.architectures")):
        if arch not in ARCHES:
            _fail(f"{path}.architectures[{i}]", f"unknown architecture {_show(arch)}")
    for i, flag in enumerate(_strings(seccomp.get("flags"), f"{path}.flags")):
        if flag not in FLAGS:
            _fail(f"{path}.flags[{i}]", f"unknown flag {_show(flag)}")
    listener = seccomp.get("listenerPath")
    if listener is not None:
        _str(listener, f"{path}.listenerPath")
        if len(listener.encode(sys.getfilesystemencoding(), "surrogateescape")) > 107:  # sun_path holds 108 bytes with the NUL
            _fail(f"{path}.listenerPath", "longer than a unix socket path may be (107 bytes)")
    if seccomp.get("listenerMetadata") is not None:
        _str(seccomp["listenerMetadata"], f"{path}.listenerMetadata")
        if not listener:
            _fail(f"{path}.listenerMetadata", "set without linux.seccomp.listenerPath")
    for i, rule in enumerate(_arr(seccomp.get("syscalls"), f"{path}.syscalls")):
        at = f"{path}.syscalls[{i}]"
        rule = _item(rule, at)
        names = _strings(_required(rule, "names", at), f"{at}.names")
        if not names:
            _fail(f"{at}.names", "must have at least one entry")
        for j, name in enumerate(names):
            if not name:
                _fail(f"{at}.names[{j}]", "must not be empty")
        act = action(rule, at, "action", "errnoRet")
        if act == "SCMP_ACT_NOTIFY":
            if not listener:
                _fail(f"{at}.action", "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
            for j, name in enumerate(names):
                if name in _NOTIFY_FORBIDDEN:
                    _fail(f"{at}.names[{j}]", f"SCMP_ACT_NOTIFY cannot be used for {_show(name)}: "
                                              "init needs it to pass the listener fd on")
        for j, arg in enumerate(_arr(rule.get("args"), f"{at}.args")):
            where = f"{at}.args[{j}]"
            arg = _item(arg, where)
            _int(_required(arg, "index", where), f"{where}.index", (0, 5, None))
            _int(_required(arg, "value", where), f"{where}.value", U64)
            _fields(arg, where, {"valueTwo": U64})
            op = _str(_required(arg, "op", where), f"{where}.op")
            if op not in OPERATORS:
                _fail(f"{where}.op", f"unknown operator {_show(op)}")
