"""The check of a linux.resources object — config.json's, or `mrunc update --resources`'s:
a module of its own, loaded only when there is one (mrunc.spec.checks.check_resources,
mrunc.spec.validate_resources). Shapes only: the cgroups phase judges values. A config without
cgroup limits (a plain `mrunc run`) does not read its code.
"""
from .checks import (I64, U16, U32, U64, _arr, _bool, _fail, _fields, _int, _item, _key, _obj,
                     _required, _show, _str)


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
