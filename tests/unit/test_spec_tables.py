"""mrunc.spec tables: parse_mount_options, features(), and the name -> number constants."""
import json
import resource

import pytest

from mrunc import spec
from mrunc.errors import SpecError
from mrunc.spec.mountopts import (MS_BIND, MS_NOATIME, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE,
                                  MS_RDONLY, MS_REC, MS_RELATIME, MS_SHARED, MS_SLAVE, MS_STRICTATIME,
                                  MS_UNBINDABLE)

# ---- parse_mount_options ------------------------------------------------------------------------

PARSE = [
    (None, (0, 0, [], "")),
    ([], (0, 0, [], "")),
    (["defaults"], (0, 0, [], "")),
    (["ro"], (MS_RDONLY, 0, [], "")),
    (["ro", "rw"], (0, MS_RDONLY, [], "")),  # later options win, as with mount(8)
    (["rw", "ro"], (MS_RDONLY, 0, [], "")),
    (["noatime", "atime"], (0, MS_NOATIME, [], "")),
    (["bind"], (MS_BIND, 0, [], "")),
    (["rbind", "ro"], (MS_BIND | MS_REC | MS_RDONLY, 0, [], "")),
    (["rbind", "rprivate"], (MS_BIND | MS_REC, 0, [MS_PRIVATE | MS_REC], "")),
    (["shared", "rslave", "runbindable"], (0, 0, [MS_SHARED, MS_SLAVE | MS_REC, MS_UNBINDABLE | MS_REC], "")),
    # runc spec's /dev and /dev/pts: unknown options are the filesystem's data, in order
    (["nosuid", "strictatime", "mode=755", "size=65536k"], (MS_NOSUID | MS_STRICTATIME, 0, [], "mode=755,size=65536k")),
    (["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
     (MS_NOSUID | MS_NOEXEC, 0, [], "newinstance,ptmxmode=0666,mode=0620,gid=5")),
    (["nosuid", "noexec", "nodev", "relatime", "ro"], (MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY, 0, [], "")),
    (["suid", "dev", "exec"], (0, MS_NOSUID | MS_NODEV | MS_NOEXEC, [], "")),
    (["copy-symlink", "lowerdir=/a:/b"], (0, 0, [], "copy-symlink,lowerdir=/a:/b")),
]


@pytest.mark.parametrize("options,expected", PARSE, ids=[str(o) for o, _ in PARSE])
def test_parse_mount_options(options, expected):
    assert spec.parse_mount_options(options) == expected


@pytest.mark.parametrize("option", sorted(spec.MOUNT_FLAGS))
def test_every_flag_option_sets_or_clears_its_flag(option):
    clear, flag = spec.MOUNT_FLAGS[option]
    flags, clear_flags, propagation, data = spec.parse_mount_options([option])
    assert (flags, clear_flags) == ((0, flag) if clear else (flag, 0))
    assert propagation == [] and data == ""


@pytest.mark.parametrize("option", sorted(spec.UNSUPPORTED_MOUNT_OPTIONS))
def test_unsupported_mount_options_raise(option):
    with pytest.raises(SpecError, match=f'^mount option "{option}": not supported by mrunc yet$'):
        spec.parse_mount_options(["nosuid", option])


def test_mount_flag_values_are_the_kernels():
    # linux/mount.h
    assert spec.MOUNT_FLAGS["ro"] == (False, 1)
    assert spec.MOUNT_FLAGS["nosymfollow"] == (False, 256)
    assert spec.MOUNT_FLAGS["bind"] == (False, 4096)
    assert spec.MOUNT_FLAGS["rbind"] == (False, 4096 | 16384)
    assert spec.MOUNT_FLAGS["lazytime"] == (False, 1 << 25)
    assert spec.PROPAGATION_FLAGS["rprivate"] == (1 << 18) | 16384


def test_brief_lists_every_classic_option():
    expected = ("ro rw nosuid suid nodev dev noexec exec sync async dirsync remount mand nomand atime noatime "
                "diratime nodiratime relatime norelatime strictatime nostrictatime lazytime nolazytime iversion "
                "noiversion silent loud bind rbind defaults nosymfollow").split()
    assert set(expected) <= set(spec.MOUNT_FLAGS)


# ---- constants ----------------------------------------------------------------------------------

def test_namespace_types():
    assert spec.NAMESPACE_TYPES == ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


def test_capabilities():
    assert len(spec.CAPABILITIES) == 41
    assert spec.CAPABILITIES["CAP_CHOWN"] == 0
    assert spec.CAPABILITIES["CAP_NET_BIND_SERVICE"] == 10
    assert spec.CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert spec.CAPABILITIES["CAP_AUDIT_WRITE"] == 29
    assert spec.CAPABILITIES["CAP_SETFCAP"] == 31
    assert spec.CAPABILITIES["CAP_AUDIT_READ"] == 37
    assert spec.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(spec.CAPABILITIES.values()) == list(range(41))


def test_capabilities_known_to_this_kernel_are_known_to_us():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    assert last <= max(spec.CAPABILITIES.values())


def test_rlimits_match_the_resource_module():
    assert len(spec.RLIMITS) == 16
    assert spec.RLIMITS["RLIMIT_LOCKS"] == 10  # Python's resource module does not export this one
    for name, number in spec.RLIMITS.items():
        assert getattr(resource, name, number) == number, name


# ---- features() ----------------------------------------------------------------------------------

def test_features_shape():
    doc = spec.features()
    json.dumps(doc)  # serializable as is
    assert doc["ociVersionMin"] == "1.0.0"
    assert doc["ociVersionMax"] == "1.3.0"
    assert doc["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    linux = doc["linux"]
    assert linux["namespaces"] == list(spec.NAMESPACE_TYPES)
    assert linux["capabilities"][0] == "CAP_CHOWN" and linux["capabilities"][-1] == "CAP_CHECKPOINT_RESTORE"
    assert len(linux["capabilities"]) == 41
    assert linux["cgroup"] == {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False}
    assert linux["seccomp"]["enabled"] is True  # libseccomp2 is a setup requirement
    assert set(linux["seccomp"]["supportedFlags"]) <= set(linux["seccomp"]["knownFlags"])
    assert linux["apparmor"] == {"enabled": False}
    assert linux["selinux"] == {"enabled": False}
    assert linux["mountExtensions"] == {"idmap": {"enabled": False}}
    assert list(doc["annotations"]) == ["io.github.mrunc.version", "io.github.seccomp.libseccomp.version"]
    assert isinstance(doc["annotations"]["io.github.mrunc.version"], str)


def test_features_mount_options_are_the_ones_we_handle():
    options = spec.features()["mountOptions"]
    assert options == sorted(options)
    assert set(options) == set(spec.MOUNT_FLAGS) | set(spec.PROPAGATION_FLAGS)
    assert not set(options) & spec.UNSUPPORTED_MOUNT_OPTIONS
    assert "mode=755" not in options  # filesystem data is not a runtime feature


def test_features_agree_with_validate(tmp_path):
    """What features() advertises, validate() accepts; what it disables, validate() refuses."""
    (tmp_path / "rootfs").mkdir()
    doc = spec.features()
    config = spec.default_config()
    config["process"]["capabilities"]["bounding"] = doc["linux"]["capabilities"]
    config["hooks"] = {kind: [{"path": "/bin/true"}] for kind in doc["hooks"]}
    config["mounts"][1]["options"] += doc["mountOptions"]
    config["linux"]["namespaces"] = [{"type": t} for t in doc["linux"]["namespaces"]]
    config["linux"]["uidMappings"] = config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    warnings = []
    spec.validate(config, str(tmp_path), warn=warnings.append)
    assert warnings == []
    for path in ("process.apparmorProfile", "process.selinuxLabel",
                 "linux.intelRdt", "linux.netDevices", "linux.resources.rdma"):
        assert path in spec.UNSUPPORTED


def test_features_is_fresh_each_time():
    a = spec.features()
    a["linux"]["namespaces"].clear()
    assert len(spec.features()["linux"]["namespaces"]) == 8
