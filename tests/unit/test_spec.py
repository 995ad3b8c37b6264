"""mrunc.spec: load() and validate() against a corpus of broken configs.

Every case is the default config (what `mrunc spec` writes) plus a small edit, and the exact start
of the error message it must produce: the JSON path first, then what is wrong.
"""
import copy
import json
import os
import re
import shutil
import subprocess
import timeit

import pytest

from mrunc import spec
from mrunc.errors import SpecError

DELETE = object()


def edit(config, path, value):
    """Set (or DELETE) the value at a path like 'linux.namespaces[2].type'; an index equal to the
    array's length appends, and missing objects on the way are created."""
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    node = config
    for key in keys[:-1]:
        if isinstance(node, dict) and node.get(key) is None:
            node[key] = {}
        node = node[key]
    last = keys[-1]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value


def edited(edits):
    config = spec.default_config()
    for path, value in edits.items():
        edit(config, path, value)
    return config


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


def errors_of(config, bundle):
    with pytest.raises(SpecError) as info:
        spec.validate(config, bundle, warn=lambda m: None)
    return str(info.value)


NO_USER_NS = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
USER_NS = NO_USER_NS + [{"type": "user"}]
MAP = [{"containerID": 0, "hostID": 1000, "size": 1}]
DEV = {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}
HOOK = {"path": "/usr/bin/true"}

# No mount namespace of the container's own (none, or one joined by path): nothing may be mounted.
NO_MNT = {"linux.namespaces": [{"type": "pid"}, {"type": "uts"}]}
BARE = dict(NO_MNT, mounts=[], **{"linux.maskedPaths": [], "linux.readonlyPaths": [], "root.readonly": False})
WHY_NO_MNT = 'without a new mount namespace (linux.namespaces has no "mount" entry: it would change the host\'s mounts)'

BROKEN = [
    # ociVersion
    ({"ociVersion": DELETE}, "ociVersion: required"),
    ({"ociVersion": "abc"}, 'ociVersion: "abc" is not a valid version'),
    ({"ociVersion": "1.0"}, 'ociVersion: "1.0" is not a valid version'),
    ({"ociVersion": 1}, "ociVersion: 1 is not a valid version"),
    ({"ociVersion": "2.0.0"}, "ociVersion: 2.0.0 is newer than supported 1.3.0"),
    ({"ociVersion": "1.4.0"}, "ociVersion: 1.4.0 is newer than supported 1.3.0"),
    ({"ociVersion": "0.9.0"}, "ociVersion: 0.9.0 is older than supported 1.0.0"),
    # root
    ({"root": DELETE}, "root: required"),
    ({"root": []}, "root: expected object, got array"),
    ({"root.path": DELETE}, "root.path: required"),
    ({"root.path": 5}, "root.path: expected string, got 5"),
    ({"root.path": "nope"}, 'root.path: "{bundle}/nope" does not exist or is not a directory'),
    ({"root.path": "config.json"}, 'root.path: "{bundle}/config.json" does not exist or is not a directory'),
    ({"root.path": "/nonexistent/rootfs"}, 'root.path: "/nonexistent/rootfs" does not exist'),
    ({"root.readonly": "yes"}, 'root.readonly: expected boolean, got "yes"'),
    # process
    ({"process": DELETE}, "process: required"),
    ({"process": "sh"}, 'process: expected object, got "sh"'),
    ({"process.args": []}, "process.args: must have at least one entry"),
    ({"process.args": DELETE}, "process.args: must have at least one entry"),
    ({"process.args": "sh"}, 'process.args: expected array, got "sh"'),
    ({"process.args": ["sh", 1]}, "process.args[1]: expected string, got 1"),
    ({"process.args": [""]}, "process.args[0]: must not be empty"),
    ({"process.cwd": DELETE}, "process.cwd: required"),
    ({"process.cwd": "tmp"}, 'process.cwd: must be an absolute path, got "tmp"'),
    ({"process.env[1]": "TERM"}, 'process.env[1]: must be "KEY=VALUE", got "TERM"'),
    ({"process.env": {"A": "b"}}, "process.env: expected array, got object"),
    ({"process.terminal": "true"}, 'process.terminal: expected boolean, got "true"'),
    ({"process.noNewPrivileges": 1}, "process.noNewPrivileges: expected boolean, got 1"),
    ({"process.oomScoreAdj": 1001}, "process.oomScoreAdj: must be between -1000 and 1000, got 1001"),
    ({"process.oomScoreAdj": -1001}, "process.oomScoreAdj: must be between -1000 and 1000, got -1001"),
    ({"process.oomScoreAdj": "5"}, 'process.oomScoreAdj: expected integer, got "5"'),
    ({"process.consoleSize": {"height": 24}}, "process.consoleSize.width: required"),
    ({"process.consoleSize": {"height": "24", "width": 80}}, 'process.consoleSize.height: expected integer, got "24"'),
    ({"process.consoleSize": {"height": 24, "width": 70000}},
     "process.consoleSize.width: expected unsigned 16-bit integer, got 70000"),
    ({"process.consoleSize": [24, 80]}, "process.consoleSize: expected object, got array"),
    # process.user
    ({"process.user.uid": "0"}, 'process.user.uid: expected integer, got "0"'),
    ({"process.user.uid": True}, "process.user.uid: expected integer, got true"),
    ({"process.user.uid": 0.0}, "process.user.uid: expected integer, got 0.0"),
    ({"process.user.gid": -1}, "process.user.gid: expected user or group id"),
    ({"process.user.uid": 2**32 - 1}, "process.user.uid: expected user or group id"),
    ({"process.user.uid": DELETE}, "process.user.uid: required"),
    ({"process.user.umask": "022"}, 'process.user.umask: expected integer, got "022"'),
    ({"process.user.umask": 0o1000}, "process.user.umask: must be between 0 and 511, got 512"),
    ({"process.user.additionalGids": ["10"]}, 'process.user.additionalGids[0]: expected integer, got "10"'),
    ({"process.user.additionalGids": 10}, "process.user.additionalGids: expected array, got 10"),
    # process.rlimits
    ({"process.rlimits[0].type": "RLIMIT_FOO"}, 'process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"'),
    ({"process.rlimits[1]": {"type": "RLIMIT_FOO", "soft": 1, "hard": 1}},
     'process.rlimits[1].type: unknown rlimit "RLIMIT_FOO"'),
    ({"process.rlimits[1]": {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
      "process.rlimits[2]": {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}},
     'process.rlimits[2].type: duplicate rlimit "RLIMIT_NOFILE"'),
    ({"process.rlimits[0].hard": DELETE}, "process.rlimits[0].hard: required"),
    ({"process.rlimits[0].type": DELETE}, "process.rlimits[0].type: required"),
    ({"process.rlimits[0].soft": -1}, "process.rlimits[0].soft: expected unsigned 64-bit integer, got -1"),
    ({"process.rlimits[0].soft": 2048}, "process.rlimits[0].soft: 2048 is above the hard limit 1024"),
    ({"process.rlimits": {"RLIMIT_NOFILE": 1}}, "process.rlimits: expected array, got object"),
    # process.capabilities (a name the kernel lacks only warns, in the security phase)
    ({"process.capabilities": ["CAP_KILL"]}, "process.capabilities: expected object, got array"),
    ({"process.capabilities.bounding[1]": "CAP_BOGUS"},
     'process.capabilities.bounding[1]: unknown capability "CAP_BOGUS"'),
    ({"process.capabilities.ambient[0]": "cap_kill"},
     'process.capabilities.ambient[0]: unknown capability "cap_kill"'),
    ({"process.capabilities.bounding": "CAP_KILL"}, 'process.capabilities.bounding: expected array, got "CAP_KILL"'),
    ({"process.capabilities.ambient[1]": 5}, "process.capabilities.ambient[1]: expected string, got 5"),
    # linux.namespaces
    ({"linux": []}, "linux: expected object, got array"),
    ({"linux.namespaces": {}}, "linux.namespaces: expected array, got object"),
    ({"linux.namespaces[2].type": "foo"}, 'linux.namespaces[2].type: unknown namespace "foo"'),
    ({"linux.namespaces[2].type": "net"}, 'linux.namespaces[2].type: unknown namespace "net"'),
    ({"linux.namespaces[3].type": "pid"}, 'linux.namespaces[3].type: duplicate namespace "pid"'),
    ({"linux.namespaces[0]": {}}, "linux.namespaces[0].type: required"),
    ({"linux.namespaces[0]": "pid"}, 'linux.namespaces[0]: expected object, got "pid"'),
    ({"linux.namespaces[1].path": "run/netns/x"}, 'linux.namespaces[1].path: must be an absolute path, got "run/netns/x"'),
    ({"linux.namespaces[1].path": 7}, "linux.namespaces[1].path: expected string, got 7"),
    # linux.uidMappings / gidMappings
    ({"linux.uidMappings": MAP}, 'linux.uidMappings: set, but linux.namespaces has no "user" namespace'),
    ({"linux.gidMappings": MAP}, 'linux.gidMappings: set, but linux.namespaces has no "user" namespace'),
    ({"linux.namespaces": USER_NS}, "linux.uidMappings: required with a new user namespace"),
    ({"linux.namespaces": USER_NS, "linux.uidMappings": MAP}, "linux.gidMappings: required with a new user namespace"),
    ({"linux.namespaces": USER_NS, "linux.uidMappings": [{"containerID": 0, "hostID": 1000, "size": 0}],
      "linux.gidMappings": MAP}, "linux.uidMappings[0].size: must be between 1 and 4294967295, got 0"),
    ({"linux.namespaces": USER_NS, "linux.uidMappings": MAP,
      "linux.gidMappings": [{"containerID": 0, "size": 1}]}, "linux.gidMappings[0].hostID: required"),
    ({"linux.namespaces": USER_NS, "linux.uidMappings": MAP,
      "linux.gidMappings": [{"containerID": -1, "hostID": 0, "size": 1}]},
     "linux.gidMappings[0].containerID: expected unsigned 32-bit integer, got -1"),
    ({"linux.namespaces": USER_NS, "linux.uidMappings": MAP * 341, "linux.gidMappings": MAP},
     "linux.uidMappings: 341 entries, the kernel takes at most 340"),
    # hostname / domainname
    ({"linux.namespaces": [{"type": "pid"}, {"type": "mount"}]},
     "hostname: unable to set hostname without a private UTS namespace"),
    ({"hostname": "", "domainname": "example.org", "linux.namespaces": [{"type": "mount"}]},
     "domainname: unable to set domainname without a private UTS namespace"),
    ({"linux.namespaces[3].path": "/proc/self/ns/uts"},  # a path to the runtime's own: the host's
     "hostname: unable to set hostname without a private UTS namespace"),
    ({"hostname": 5}, "hostname: expected string, got 5"),
    ({"hostname": "h" * 65}, "hostname: 65 bytes, the kernel takes at most 64"),
    # mounts
    ({"mounts": {}}, "mounts: expected array, got object"),
    ({"mounts[0]": "proc"}, 'mounts[0]: expected object, got "proc"'),
    ({"mounts[3].destination": "proc"}, 'mounts[3].destination: must be an absolute path, got "proc"'),
    ({"mounts[0].destination": DELETE}, "mounts[0].destination: required"),
    ({"mounts[0].destination": ["/proc"]}, "mounts[0].destination: expected string, got array"),
    ({"mounts[0].type": 5}, "mounts[0].type: expected string, got 5"),
    ({"mounts[0].source": False}, "mounts[0].source: expected string, got false"),
    ({"mounts[1].options": "nosuid"}, 'mounts[1].options: expected array, got "nosuid"'),
    ({"mounts[1].options[2]": 755}, "mounts[1].options[2]: expected string, got 755"),
    ({"mounts[1].options[1]": ""}, "mounts[1].options[1]: must not be empty"),
    ({"mounts[1].options[0]": "tmpcopyup"}, 'mounts[1].options[0]: "tmpcopyup" is not supported by mrunc yet'),
    ({"mounts[5].options[3]": "rro"}, 'mounts[5].options[3]: "rro" is not supported by mrunc yet'),
    ({"mounts[7]": {"destination": "/data", "type": "none", "source": "/srv", "options": ["rbind", "idmap"]}},
     'mounts[7].options[1]: "idmap" is not supported by mrunc yet'),
    ({"mounts[7]": {"destination": "/data", "options": ["rbind", "ro"]}}, "mounts[7].source: required for a bind mount"),
    ({"mounts[7]": {"destination": "/data", "source": "", "options": ["bind"]}}, "mounts[7].source: required for a bind mount"),
    # linux.devices
    ({"linux.devices": {}}, "linux.devices: expected array, got object"),
    ({"linux.devices": [dict(DEV, type="x")]}, 'linux.devices[0].type: must be one of "c", "b", "u", "p", got "x"'),
    ({"linux.devices": [dict(DEV, type=None)]}, "linux.devices[0].type: required"),
    ({"linux.devices": [dict(DEV, path="dev/fuse")]}, 'linux.devices[0].path: must be an absolute path, got "dev/fuse"'),
    ({"linux.devices": [DEV, dict(DEV, path=None)]}, "linux.devices[1].path: required"),
    ({"linux.devices": [dict(DEV, major=None)]}, "linux.devices[0].major: required"),
    ({"linux.devices": [dict(DEV, type="b", minor=None)]}, "linux.devices[0].minor: required"),
    ({"linux.devices": [dict(DEV, major=5000)]}, "linux.devices[0].major: must be between 0 and 4095, got 5000"),
    ({"linux.devices": [dict(DEV, minor="229")]}, 'linux.devices[0].minor: expected integer, got "229"'),
    ({"linux.devices": [dict(DEV, fileMode="0666")]}, 'linux.devices[0].fileMode: expected integer, got "0666"'),
    ({"linux.devices": [dict(DEV, uid=-1)]}, "linux.devices[0].uid: expected user or group id"),
    # without a mount namespace of its own, what would need a mount is refused (host safety)
    (NO_MNT, f"mounts[0]: cannot mount {WHY_NO_MNT}"),
    ({"linux.namespaces[4].path": "/proc/self/ns/mnt"},
     "mounts[0]: cannot mount without a new mount namespace (the mount namespace is joined by path "
     "(/proc/self/ns/mnt): it would change the mounts of whoever owns it)"),
    (dict(NO_MNT, mounts=[]), f"linux.maskedPaths[0]: cannot mask paths {WHY_NO_MNT}"),
    (dict(BARE, **{"linux.readonlyPaths": ["/proc/sys"]}),
     f"linux.readonlyPaths[0]: cannot make paths read-only {WHY_NO_MNT}"),
    (dict(BARE, **{"linux.devices": [DEV]}), f"linux.devices[0]: cannot create device nodes {WHY_NO_MNT}"),
    (dict(BARE, **{"linux.rootfsPropagation": "rslave"}),
     f"linux.rootfsPropagation: cannot set the propagation of the root {WHY_NO_MNT}"),
    (dict(BARE, **{"root.readonly": True}), f"root.readonly: cannot make the root read-only {WHY_NO_MNT}"),
    # a cgroup mount without a cgroup namespace of the container's own is never writable (S15)
    ({"mounts[6].options": ["nosuid", "ro", "rw"]},
     'mounts[6].options[2]: "rw" on a cgroup filesystem needs a new cgroup namespace (linux.namespaces '
     'has no "cgroup" entry): the cgroup tree would be writable from the container'),
    ({"mounts[6].options": ["rw"], "linux.namespaces[5]": {"type": "cgroup", "path": "/proc/self/ns/cgroup"}},
     'mounts[6].options[0]: "rw" on a cgroup filesystem needs a new cgroup namespace (the cgroup '
     'namespace is joined by path): the cgroup tree would be writable from the container'),
    # linux.sysctl (runc's rules: only keys of a namespace the container owns)
    ({"linux.sysctl": []}, "linux.sysctl: expected object, got array"),
    ({"linux.sysctl": {"net.ipv4.ip_forward": 1}}, 'linux.sysctl["net.ipv4.ip_forward"]: expected string, got 1'),
    ({"linux.sysctl": {"kernel.pid_max": "4096"}},
     'linux.sysctl["kernel.pid_max"]: not in a separate kernel namespace'),
    ({"linux.sysctl": {"vm.swappiness": "0"}}, 'linux.sysctl["vm.swappiness"]: not in a separate kernel namespace'),
    ({"linux.sysctl": {"kernel.hostname": "x"}}, 'linux.sysctl["kernel.hostname"]: conflicts with the "hostname" field'),
    ({"linux.sysctl": {"kernel.msgmax": "8192"}, "linux.namespaces": [{"type": "mount"}], "hostname": DELETE},
     'linux.sysctl["kernel.msgmax"]: needs a private ipc namespace'),
    ({"linux.sysctl": {"fs.mqueue.msg_max": "10"}, "linux.namespaces": [{"type": "mount"}], "hostname": DELETE},
     'linux.sysctl["fs.mqueue.msg_max"]: needs a private ipc namespace'),
    ({"linux.sysctl": {"net.ipv4.ip_forward": "1"}, "linux.namespaces": [{"type": "uts"}]},
     'linux.sysctl["net.ipv4.ip_forward"]: needs a private network namespace'),
    ({"linux.sysctl": {"net.ipv4.ip_forward": "1"}, "linux.namespaces[1].path": "/proc/self/ns/net"},
     'linux.sysctl["net.ipv4.ip_forward"]: not allowed in the host\'s network namespace'),
    ({"linux.sysctl": {"kernel.msgmax": "8192"}, "linux.namespaces[2].path": "/proc/self/ns/ipc"},
     'linux.sysctl["kernel.msgmax"]: not allowed in the host\'s ipc namespace'),
    ({"linux.sysctl": {"kernel.domainname": "x"}, "linux.namespaces": [{"type": "ipc"}], "hostname": DELETE},
     'linux.sysctl["kernel.domainname"]: needs a private uts namespace'),
    ({"linux.sysctl": {"user.max_user_namespaces": "0"}},
     'linux.sysctl["user.max_user_namespaces"]: needs a private user namespace'),
    ({"linux.sysctl": {"net.ipv4/../../kernel/x": "1"}}, 'linux.sysctl["net.ipv4/../../kernel/x"]: not a valid sysctl name'),
    ({"linux.sysctl": {"net..ipv4": "1"}}, 'linux.sysctl["net..ipv4"]: not a valid sysctl name'),
    ({"linux.sysctl": {"": "1"}}, 'linux.sysctl[""]: not a valid sysctl name'),
    # linux.maskedPaths / readonlyPaths
    ({"linux.maskedPaths[1]": "proc/kcore"}, 'linux.maskedPaths[1]: must be an absolute path, got "proc/kcore"'),
    ({"linux.readonlyPaths[0]": 5}, "linux.readonlyPaths[0]: expected string, got 5"),
    ({"linux.readonlyPaths": "/proc"}, 'linux.readonlyPaths: expected array, got "/proc"'),
    # linux.rootfsPropagation
    ({"linux.rootfsPropagation": "foo"},
     'linux.rootfsPropagation: must be one of private, rprivate, shared, rshared, slave, rslave, unbindable, runbindable, got "foo"'),
    ({"linux.rootfsPropagation": "RPRIVATE"}, "linux.rootfsPropagation: must be one of"),
    ({"linux.rootfsPropagation": 1}, "linux.rootfsPropagation: expected string, got 1"),
    # annotations
    ({"annotations": []}, "annotations: expected object, got array"),
    ({"annotations": {"org.example.n": 1}}, 'annotations["org.example.n"]: expected string, got 1'),
    ({"annotations": {"": "x"}}, "annotations: keys must not be empty"),
    # hooks
    ({"hooks": []}, "hooks: expected object, got array"),
    ({"hooks.preStart": [HOOK]}, "hooks.preStart: unknown hook kind (known: prestart, createRuntime,"),
    ({"hooks.prestart": HOOK}, "hooks.prestart: expected array, got object"),
    ({"hooks.createRuntime": [HOOK, {"args": ["x"]}]}, "hooks.createRuntime[1].path: required"),
    ({"hooks.poststop": [{"path": "true"}]}, 'hooks.poststop[0].path: must be an absolute path, got "true"'),
    ({"hooks.poststart": [dict(HOOK, args="true")]}, 'hooks.poststart[0].args: expected array, got "true"'),
    ({"hooks.startContainer": [dict(HOOK, env=["X"])]}, 'hooks.startContainer[0].env[0]: must be "KEY=VALUE", got "X"'),
    ({"hooks.createContainer": [dict(HOOK, timeout=0)]}, "hooks.createContainer[0].timeout: expected positive integer, got 0"),
    ({"hooks.prestart": [dict(HOOK, timeout="5")]}, 'hooks.prestart[0].timeout: expected integer, got "5"'),
    # linux.resources (shapes only) and cgroupsPath
    ({"linux.cgroupsPath": 5}, "linux.cgroupsPath: expected string, got 5"),
    ({"linux.resources": []}, "linux.resources: expected object, got array"),
    ({"linux.resources.memory.limit": "1G"}, 'linux.resources.memory.limit: expected integer, got "1G"'),
    ({"linux.resources.memory.disableOOMKiller": 1}, "linux.resources.memory.disableOOMKiller: expected boolean, got 1"),
    ({"linux.resources.memory.swappiness": -1}, "linux.resources.memory.swappiness: expected unsigned 64-bit integer, got -1"),
    ({"linux.resources.cpu.cpus": 1}, "linux.resources.cpu.cpus: expected string, got 1"),
    ({"linux.resources.cpu.shares": -2}, "linux.resources.cpu.shares: expected unsigned 64-bit integer, got -2"),
    ({"linux.resources.cpu.quota": 1.5}, "linux.resources.cpu.quota: expected integer, got 1.5"),
    ({"linux.resources.pids": {}}, "linux.resources.pids.limit: required"),
    ({"linux.resources.pids.limit": "max"}, 'linux.resources.pids.limit: expected integer, got "max"'),
    ({"linux.resources.blockIO.weight": 70000}, "linux.resources.blockIO.weight: expected unsigned 16-bit integer, got 70000"),
    ({"linux.resources.blockIO.weightDevice": [{"major": 8, "weight": 10}]},
     "linux.resources.blockIO.weightDevice[0].minor: required"),
    ({"linux.resources.blockIO.throttleReadBpsDevice": [{"major": 8, "minor": 0}]},
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate: required"),
    ({"linux.resources.blockIO.throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": -1}]},
     "linux.resources.blockIO.throttleWriteIOPSDevice[0].rate: expected unsigned 64-bit integer, got -1"),
    ({"linux.resources.hugepageLimits": [{"pageSize": "2MB"}]}, "linux.resources.hugepageLimits[0].limit: required"),
    ({"linux.resources.hugepageLimits": [{"pageSize": 2, "limit": 1}]},
     "linux.resources.hugepageLimits[0].pageSize: expected string, got 2"),
    ({"linux.resources.network.classID": -1}, "linux.resources.network.classID: expected unsigned 32-bit integer, got -1"),
    ({"linux.resources.network.priorities": [{"name": "eth0"}]}, "linux.resources.network.priorities[0].priority: required"),
    ({"linux.resources.unified": {"memory.max": 5}}, 'linux.resources.unified["memory.max"]: expected string, got 5'),
    ({"linux.resources.unified": ["memory.max=5"]}, "linux.resources.unified: expected object, got array"),
    ({"linux.resources.devices[0].allow": DELETE}, "linux.resources.devices[0].allow: required"),
    ({"linux.resources.devices[0].allow": "false"}, 'linux.resources.devices[0].allow: expected boolean, got "false"'),
    ({"linux.resources.devices[1]": {"allow": True, "type": "x"}},
     'linux.resources.devices[1].type: must be one of "a", "c", "b", got "x"'),
    ({"linux.resources.devices[0].access": "rwx"},
     'linux.resources.devices[0].access: must be made of "r", "w" and "m", got "rwx"'),
    ({"linux.resources.devices[0].access": ""}, "linux.resources.devices[0].access: must be made of"),
    ({"linux.resources.devices[0].major": "*"}, 'linux.resources.devices[0].major: expected integer, got "*"'),
]


@pytest.mark.parametrize("edits,expected", BROKEN, ids=[e for _, e in BROKEN])
def test_broken_config(bundle, edits, expected):
    assert errors_of(edited(edits), bundle).startswith(expected.format(bundle=bundle))


def _example(path):
    """A non-empty value of the right JSON type for an UNSUPPORTED path."""
    name = path.split(".")[-1]
    if name in ("apparmorProfile", "selinuxLabel", "mountLabel"):
        return "x"
    if name in ("uidMappings", "gidMappings"):
        return MAP
    return {"k": 1}


@pytest.mark.parametrize("dotted", spec.UNSUPPORTED)
def test_unsupported_fields_are_refused(bundle, dotted):
    path = dotted.replace("[]", "[2]")
    config = edited({path: _example(path)})
    assert errors_of(config, bundle) == f"{path}: not supported by mrunc yet"


@pytest.mark.parametrize("dotted", spec.UNSUPPORTED)
@pytest.mark.parametrize("empty", [True, False], ids=["empty", "null"])
def test_unsupported_fields_when_null_or_empty_are_absent(bundle, dotted, empty):
    path = dotted.replace("[]", "[2]")
    spec.validate(edited({path: type(_example(path))() if empty else None}), bundle)


VALID = [
    {},
    {"ociVersion": "1.0.0"},
    {"ociVersion": "1.0.0-rc5"},
    {"ociVersion": "1.1.0+dev"},
    {"ociVersion": "1.2.0"},
    {"ociVersion": "1.3.0"},
    {"ociVersion": "1.3.7"},
    {"root.path": "{bundle}/rootfs"},
    {"hostname": "", "linux.namespaces": [{"type": "mount"}]},
    dict(BARE, hostname=DELETE, **{"linux.namespaces": []}),  # no namespace at all: a chroot
    dict(BARE, **{"linux.namespaces[2]": {"type": "mount", "path": "/proc/self/ns/mnt"}}),  # joined
    {"linux.namespaces": [{"type": t} for t in spec.NAMESPACE_TYPES],
     "linux.uidMappings": MAP, "linux.gidMappings": MAP},
    # a joined user namespace brings its own maps
    {"linux.namespaces": NO_USER_NS + [{"type": "user", "path": "/proc/1/ns/user"}]},
    {"linux.namespaces[1].path": ""},  # Go's spelling of "no path"
    {"linux.devices": [{"type": "p", "path": "/dev/myfifo"}, DEV, dict(DEV, type="u", fileMode=438, uid=0, gid=0)]},
    {"linux.sysctl": {"net.ipv4.ip_forward": "1", "net.ipv4.conf.eth0/100.forwarding": "1",
                      "kernel.shmmax": "1", "kernel.sem": "1 2 3 4", "fs.mqueue.queues_max": "1",
                      "kernel.domainname": "example.org"}},
    {"linux.sysctl": {"user.max_user_namespaces": "0"}, "linux.namespaces": USER_NS,
     "linux.uidMappings": MAP, "linux.gidMappings": MAP},
    {"linux.rootfsPropagation": ""},
    {"process.oomScoreAdj": -1000, "process.user.umask": 0o22, "process.consoleSize": {"height": 0, "width": 0}},
    {"process.rlimits[0].soft": 2**64 - 1, "process.rlimits[0].hard": 2**64 - 1},
    {"process.user": None, "process.capabilities": None, "process.env": None, "process.rlimits": None},
    {"mounts": None, "hooks": None, "annotations": None, "linux.resources": None},
    {"linux.resources.pids.limit": 0, "linux.resources.memory.limit": -1},
    {"annotations": {"org.opencontainers.image.os": "linux", "x": None}},
    {"mounts[6].options": ["rw"], "linux.namespaces[5]": {"type": "cgroup"}},  # its own: may be rw
    {"mounts[6].options": ["rw", "ro"]},  # the last one wins
    {"mounts[7]": {"destination": "/data", "type": "none", "source": "data", "options": ["rbind", "ro", "rprivate"]}},
]


@pytest.mark.parametrize("edits", VALID, ids=[json.dumps(e, default=str)[:60] for e in VALID])
def test_valid_config(bundle, edits):
    edits = {k: v.format(bundle=bundle) if isinstance(v, str) else v for k, v in edits.items()}
    spec.validate(edited(edits), bundle)


@pytest.mark.parametrize("propagation", list(spec.PROPAGATION_FLAGS))
def test_every_rootfs_propagation_is_valid(bundle, propagation):
    spec.validate(edited({"linux.rootfsPropagation": propagation}), bundle)


def kitchen_sink():
    """A config that uses (validly) every field mrunc accepts."""
    config = spec.default_config()
    process = config["process"]
    process.update(consoleSize={"height": 24, "width": 80}, oomScoreAdj=100)
    process["user"].update(umask=0o22, additionalGids=[1, 2, 3])
    process["capabilities"]["inheritable"] = []
    process["rlimits"].append({"type": "RLIMIT_CORE", "soft": 0, "hard": 2**64 - 1})
    config["domainname"] = "example.org"
    config["annotations"] = {"org.example.key": "value"}
    config["mounts"].append({"destination": "/data", "type": "none", "source": "/srv", "options": ["rbind", "ro"]})
    config["hooks"] = {kind: [{"path": "/bin/true", "args": ["true", "x"], "env": ["A=b"], "timeout": 5}]
                       for kind in spec.HOOK_KINDS}
    linux = config["linux"]
    linux["namespaces"] = [{"type": t} for t in spec.NAMESPACE_TYPES]
    linux.update(
        uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
        gidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
        devices=[{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}],
        sysctl={"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536"},
        rootfsPropagation="rslave",
        cgroupsPath="/mrunc/test",
    )
    linux["resources"].update(
        memory={"limit": 1 << 30, "reservation": 1 << 29, "swap": 1 << 31, "kernel": -1, "kernelTCP": -1,
                "swappiness": 60, "disableOOMKiller": False, "useHierarchy": True, "checkBeforeUpdate": True},
        cpu={"shares": 1024, "quota": 50000, "burst": 1000, "period": 100000, "realtimeRuntime": 0,
             "realtimePeriod": 0, "cpus": "0-1", "mems": "0", "idle": 0},
        pids={"limit": 100},
        blockIO={"weight": 500, "leafWeight": 500,
                 "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                 "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}],
                 "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}],
                 "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                 "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
        hugepageLimits=[{"pageSize": "2MB", "limit": 0}],
        network={"classID": 1, "priorities": [{"name": "eth0", "priority": 5}]},
        unified={"memory.high": "max"},
    )
    linux["resources"]["devices"].append({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    return config


def test_kitchen_sink_is_valid(bundle):
    spec.validate(kitchen_sink(), bundle)


def test_unknown_properties_are_ignored(bundle):
    """Spec: a runtime MUST ignore properties it does not know (new spec versions add some)."""
    config = kitchen_sink()
    config["vm"] = {"hypervisor": {"path": "relative"}}
    config["windows"] = {"layerFolders": 1}
    config["process"]["fancyNewThing"] = [1, 2]
    config["process"]["user"]["username"] = 5
    config["process"]["capabilities"]["futureSet"] = ["CAP_NOPE"]
    config["root"]["extra"] = None
    config["mounts"][0]["zfsFlags"] = 7
    config["hooks"]["prestart"][0]["retries"] = "x"
    linux = config["linux"]
    linux["namespaces"][0]["flags"] = 1
    linux["devices"][0]["future"] = {}
    linux["uidMappings"][0]["foo"] = "bar"
    linux["resources"]["memory"]["fancy"] = "x"
    linux["resources"]["devices"][0]["note"] = 1
    linux["resources"]["futureController"] = {"a": "b"}
    linux["futureField"] = "x"
    spec.validate(config, bundle)


def test_validate_does_not_change_the_config(bundle):
    config = kitchen_sink()
    before = copy.deepcopy(config)
    spec.validate(config, bundle)
    assert config == before


def test_validate_refuses_a_non_object(bundle):
    for value, shown in (([], "array"), (None, "null"), ("x", '"x"')):
        with pytest.raises(SpecError, match=f"^config.json: expected object, got {re.escape(shown)}$"):
            spec.validate(value, bundle)


# ---- warnings ----------------------------------------------------------------------------------

def test_unknown_capability_is_an_error_in_every_set(bundle):
    """A name outside capabilities(7) is a typo: refused with its JSON path, in every set."""
    for kind in spec.CAPABILITY_SETS:
        config = spec.default_config()
        config["process"]["capabilities"][kind] = ["CAP_KILL", "CAP_BOGUS"]
        assert errors_of(config, bundle) == \
            f'process.capabilities.{kind}[1]: unknown capability "CAP_BOGUS"'


def test_mount_label_without_selinux_warns_once_and_passes(bundle, monkeypatch):
    from mrunc.spec import checks
    monkeypatch.setattr(checks, "selinux_enabled", lambda: False)
    config = spec.default_config()
    config["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0:c1,c2"
    warnings = []
    spec.validate(config, bundle, warn=warnings.append)
    assert warnings == ["linux.mountLabel: ignored: SELinux is not enabled on this host"]
    config["linux"]["mountLabel"] = 5
    assert errors_of(config, bundle) == "linux.mountLabel: expected string, got 5"


def test_mount_label_with_selinux_is_refused(bundle, monkeypatch):
    from mrunc.spec import checks
    monkeypatch.setattr(checks, "selinux_enabled", lambda: True)
    config = spec.default_config()
    config["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0"
    assert errors_of(config, bundle) == \
        "linux.mountLabel: not supported by mrunc yet (this host has SELinux)"
    config["linux"]["mountLabel"] = ""   # Go's "unset"
    spec.validate(config, bundle)


def test_default_warn_prints_to_stderr(bundle, capsys, monkeypatch):
    from mrunc.spec import checks
    monkeypatch.setattr(checks, "selinux_enabled", lambda: False)
    config = spec.default_config()
    config["linux"]["mountLabel"] = "x"
    spec.validate(config, bundle)
    assert capsys.readouterr().err == "mrunc: warning: linux.mountLabel: ignored: SELinux is not enabled on this host\n"


def test_known_capabilities_do_not_warn(bundle):
    config = spec.default_config()
    config["process"]["capabilities"] = {kind: list(spec.CAPABILITIES) for kind in spec.CAPABILITY_SETS}
    warnings = []
    spec.validate(config, bundle, warn=warnings.append)
    assert warnings == []


# ---- load() --------------------------------------------------------------------------------------

def write_bundle(path, text):
    (path / "rootfs").mkdir(exist_ok=True)
    (path / "config.json").write_text(text) if isinstance(text, str) else (path / "config.json").write_bytes(text)
    return str(path)


def test_load_returns_the_parsed_config_unchanged(tmp_path):
    config = kitchen_sink()
    config["unknown"] = {"kept": True}
    bundle = write_bundle(tmp_path, json.dumps(config))
    assert spec.load(bundle) == config


def test_load_missing_bundle(tmp_path):
    with pytest.raises(SpecError, match=f"^bundle {tmp_path}/nope: no such directory$"):
        spec.load(str(tmp_path / "nope"))


def test_load_missing_config(tmp_path):
    with pytest.raises(SpecError, match=f"^config.json: not found in bundle {tmp_path}$"):
        spec.load(str(tmp_path))


def test_load_invalid_json(tmp_path):
    bundle = write_bundle(tmp_path, '{\n  "ociVersion": "1.0.0",\n  "root": {"path": "rootfs",}\n}')
    with pytest.raises(SpecError, match=r"^config.json: invalid JSON at line 3 column 29: Expecting property name"):
        spec.load(bundle)


def test_load_empty_file(tmp_path):
    with pytest.raises(SpecError, match=r"^config.json: invalid JSON at line 1 column 1: Expecting value$"):
        spec.load(write_bundle(tmp_path, ""))


def test_load_not_utf8(tmp_path):
    with pytest.raises(SpecError, match=r"^config.json: not valid UTF-8"):
        spec.load(write_bundle(tmp_path, b'{"ociVersion": "\xff"}'))


def test_load_not_an_object(tmp_path):
    with pytest.raises(SpecError, match=r"^config.json: expected object, got array$"):
        spec.load(write_bundle(tmp_path, "[]"))


def test_load_validates(tmp_path):
    config = spec.default_config()
    config["mounts"][3]["destination"] = "proc"
    with pytest.raises(SpecError, match=r'^mounts\[3\].destination: must be an absolute path, got "proc"'):
        spec.load(write_bundle(tmp_path, json.dumps(config)))


def test_load_passes_warn_on(tmp_path, monkeypatch):
    from mrunc.spec import checks
    monkeypatch.setattr(checks, "selinux_enabled", lambda: False)
    config = spec.default_config()
    config["linux"]["mountLabel"] = "x"
    warnings = []
    spec.load(write_bundle(tmp_path, json.dumps(config)), warn=warnings.append)
    assert warnings == ["linux.mountLabel: ignored: SELinux is not enabled on this host"]


# ---- validate_process / validate_resources ----------------------------------------------------------

def test_validate_process():
    process = spec.default_config()["process"]
    spec.validate_process(process)
    with pytest.raises(SpecError, match=r"^process.cwd: must be an absolute path"):
        spec.validate_process(dict(process, cwd="x"))
    with pytest.raises(SpecError, match=r"^process.apparmorProfile: not supported by mrunc yet$"):
        spec.validate_process(dict(process, apparmorProfile="docker-default"))


def test_validate_resources():
    spec.validate_resources(kitchen_sink()["linux"]["resources"])
    with pytest.raises(SpecError, match=r"^linux.resources.pids.limit: required$"):
        spec.validate_resources({"pids": {}})
    with pytest.raises(SpecError, match=r"^linux.resources.rdma: not supported by mrunc yet$"):
        spec.validate_resources({"rdma": {"mlx5_1": {"hcaHandles": 3}}})


def test_rdma_shape_is_checked_for_the_day_it_is_supported():
    from mrunc.spec.checks import resources_fields
    resources_fields({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}}, "linux.resources")
    with pytest.raises(SpecError, match=r'^linux.resources.rdma\["mlx5_1"\].hcaHandles: expected integer, got "3"$'):
        resources_fields({"rdma": {"mlx5_1": {"hcaHandles": "3"}}}, "linux.resources")


# ---- default_config() and runc ------------------------------------------------------------------

def test_default_config_is_valid(bundle):
    spec.validate(spec.default_config(), bundle)


def test_rootless_default_config_is_valid(bundle):
    config = spec.default_config(rootless=True)
    spec.validate(config, bundle)
    assert {"type": "user"} in config["linux"]["namespaces"]
    assert {"type": "network"} not in config["linux"]["namespaces"]
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert "resources" not in config["linux"]


def test_default_config_is_fresh_each_time():
    a = spec.default_config()
    a["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    a["mounts"][2]["options"].clear()
    assert spec.default_config()["process"]["capabilities"]["bounding"] == [
        "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert "gid=5" in spec.default_config()["mounts"][2]["options"]


def runc_spec(tmp_path, *flags):
    subprocess.run(["runc", "spec", *flags], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


needs_runc = pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")


@needs_runc
@pytest.mark.parametrize("rootless", [False, True], ids=["default", "rootless"])
def test_runc_spec_output_loads(tmp_path, rootless):
    bundle = runc_spec(tmp_path, *(["--rootless"] if rootless else []))
    assert spec.load(bundle) is not None


@needs_runc
@pytest.mark.parametrize("rootless", [False, True], ids=["default", "rootless"])
def test_default_config_equals_runc_spec(tmp_path, rootless):
    bundle = runc_spec(tmp_path, *(["--rootless"] if rootless else []))
    with open(os.path.join(bundle, "config.json")) as f:
        text = f.read()
    runc = json.loads(text)
    ours = spec.default_config(rootless=rootless)
    # a newer runc writes its own spec version; everything else must match
    ours["ociVersion"] = runc["ociVersion"]
    assert ours == runc
    # same key order and layout too, so the files `mrunc spec` and `runc spec` write diff clean
    assert json.dumps(ours, indent="\t") == text


# ---- speed: this runs on every `mrunc create` ------------------------------------------------------

def test_validate_is_fast(bundle):
    config = spec.default_config()
    runs = 200
    seconds = min(timeit.repeat(lambda: spec.validate(config, bundle), number=runs, repeat=3)) / runs
    assert seconds < 0.001, f"validate took {seconds * 1e6:.0f} µs"


def test_bare_process_and_resources_get_the_string_checks_too():
    """exec --process and update --resources files: a NUL or a lone surrogate is refused by path."""
    with pytest.raises(SpecError, match=r"^process\.args\[0\]: contains a NUL character"):
        spec.validate_process({"args": ["sh\0"], "cwd": "/"})
    with pytest.raises(SpecError, match=r'^linux\.resources\.unified\["memory\.max"\]: not valid Unicode'):
        spec.validate_resources({"unified": {"memory.max": "\ud800"}})
    with pytest.raises(SpecError, match=r'^process\.env\[0\]: must be "KEY=VALUE", got "=x"'):
        spec.validate_process({"args": ["sh"], "cwd": "/", "env": ["=x"]})
