"""The features document (`mrunc features`): what this runtime understands, for engines to read.

An engine (containerd, podman…) may ask a runtime what it supports before writing a config.json,
instead of learning it from an error. The spec wants the answer fixed when the runtime is built,
not probed on the host, so it is assembled from the same tables the checks use: a field cannot be
advertised here and refused by validate(), or the other way round.
"""

from .consts import CAPABILITIES, HOOK_KINDS, NAMESPACE_TYPES, OCI_VERSION_MAX, OCI_VERSION_MIN
from .mountopts import MOUNT_FLAGS, PROPAGATION_FLAGS


def features():
    """The runtime-spec features document for mrunc, as a fresh dict."""
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(HOOK_KINDS),
        # Options we act on ourselves; filesystem data options are passed on and not listed.
        "mountOptions": sorted([*MOUNT_FLAGS, *PROPAGATION_FLAGS]),
        "linux": {
            "namespaces": list(NAMESPACE_TYPES),
            "capabilities": sorted(CAPABILITIES, key=CAPABILITIES.get),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
            # Empty lists, not absent: absent would mean "unknown", empty means "none".
            "memoryPolicy": {"modes": [], "flags": []},
            "netDevices": {"enabled": False},
        },
        "annotations": {"io.github.mrunc.version": _version(), **_libseccomp_annotation()},
        "potentiallyUnsafeConfigAnnotations": [],
    }


def _seccomp():
    """linux.seccomp: the names we translate are fixed; what this machine can load is not. As in
    runc, `supportedFlags` are the known flags the running kernel accepts (we hand the program to
    seccomp(2) ourselves, so libseccomp's version does not matter for them), and without
    libseccomp (which generates the program) the feature is off."""
    from mrunc.linux import seccomp as lsc
    try:
        lib = lsc.load_library()
    except OSError:
        return {"enabled": False}
    return {
        "enabled": True,
        "actions": list(lsc.ACTIONS),
        "operators": list(lsc.OPERATORS),
        "archs": [a for a in lsc.ARCHES if lib.resolve_arch(a) is not None],
        "knownFlags": list(lsc.FLAGS),
        "supportedFlags": [name for name, (_, bit) in lsc.FLAGS.items()
                           if lsc.kernel_flag_supported(bit)],
    }


def _libseccomp_annotation():
    from mrunc.linux import seccomp as lsc
    try:
        return {"io.github.seccomp.libseccomp.version": lsc.load_library().version_string}
    except OSError:
        return {}


def _version():
    import mrunc

    version = getattr(mrunc, "__version__", None)
    if version is None:
        # Only `mrunc features` gets here, never the create path, so the import cost is fine.
        from importlib import metadata

        try:
            version = metadata.version("mrunc")
        except metadata.PackageNotFoundError:
            version = "unknown"
    return version
