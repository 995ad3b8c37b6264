"""Phase "spec": read a bundle's config.json and decide whether we can run it.

An OCI **bundle** is a directory holding a root filesystem and a `config.json`. The runtime never
looks at images, registries or layers; everything it needs to know is in that one file:

- `ociVersion`: which version of the runtime-spec the file follows;
- `root`: the directory that becomes `/` in the container (usually `rootfs`, next to config.json);
- `process`: what to run (`args`, `env`, `cwd`), as whom (`user`), with which `capabilities`,
  `rlimits` and terminal;
- `mounts`: filesystems to mount inside, in order (`/proc`, `/dev`, `/sys`…);
- `hooks`: programs the runtime runs at fixed points of the container's life;
- `linux`: the kernel features that make it a container — `namespaces` to create or join, uid/gid
  maps, cgroup `resources`, `devices`, `sysctl`, masked and read-only paths.

The spec says what each field means and which values are invalid; it leaves much to judgement,
so the rules mrunc follows are: a config that fails any check is refused before anything is
created, with one line naming the JSON path (`mounts[3].destination: must be an absolute path…`);
unknown properties are ignored (new spec versions add them); `null` means absent; a field the spec
defines but mrunc does not implement yet is refused (see `UNSUPPORTED`), never silently skipped.

The checks are in `checks.CHECKS`, one small function each; `features()` tells engines the same
facts ahead of time, and `default_config()` is what `mrunc spec` writes.
"""

import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import sys

from mrunc import fastjson, paths
from mrunc.errors import SpecError

from .checks import (CHECKS, UNSUPPORTED, _show, check_strings, check_unsupported, process_fields,
                     resources_fields, version_numbers)
from .consts import (CAPABILITIES, CAPABILITY_SETS, HOOK_KINDS, NAMESPACE_TYPES, OCI_VERSION_MAX,
                     OCI_VERSION_MIN, RLIMITS)
from .mountopts import MOUNT_FLAGS, PROPAGATION_FLAGS, UNSUPPORTED_MOUNT_OPTIONS, parse_mount_options

__all__ = [
    "load", "validate", "validate_process", "validate_resources", "default_config", "features",
    "parse_mount_options", "CHECKS", "UNSUPPORTED", "NAMESPACE_TYPES", "CAPABILITIES",
    "CAPABILITY_SETS", "RLIMITS", "HOOK_KINDS", "MOUNT_FLAGS", "PROPAGATION_FLAGS",
    "UNSUPPORTED_MOUNT_OPTIONS", "OCI_VERSION_MIN", "OCI_VERSION_MAX", "version_numbers",
]


def __getattr__(name):
    """default_config and features, imported when first asked for: only `mrunc spec`, `mrunc
    features`, the notebook and the tests use them, and importing each cost every create, run
    and exec ≈ 0.1 ms of CPU."""
    if name == "default_config":
        from .defaults import default_config
        return default_config
    if name == "features":
        from .featuresdoc import features
        return features
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def print_warning(message):
    """The default `warn`: one line on stderr, like the CLI's errors."""
    print(f"mrunc: warning: {message}", file=sys.stderr)


def load(bundle, *, warn=print_warning, sys=None):
    """Read, parse and validate <bundle>/config.json; return the parsed dict, unchanged.
    `sys`: the Syscalls that records the read and each check (the trace's "spec" phase)."""
    if not paths.isdir(bundle):
        raise SpecError(f"bundle {bundle}: no such directory")
    sys = sys or _syscalls()
    path = paths.join(bundle, "config.json")
    try:
        with sys.around("read", path), open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SpecError(f"config.json: not found in bundle {bundle}") from None
    except OSError as e:
        raise SpecError(f"config.json: cannot read: {e.strerror}") from None
    try:
        config = fastjson.loads(raw)  # bytes: UTF-8/16/32, detected as json does
    except UnicodeDecodeError as e:
        raise SpecError(f"config.json: not valid UTF-8 at byte {e.start}") from None
    except ValueError as e:     # json.JSONDecodeError
        raise SpecError(f"config.json: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise SpecError("config.json: nested too deeply") from None
    validate(config, bundle, warn=warn, sys=sys)
    return config


def validate(config, bundle, *, warn=print_warning, sys=None):
    """Run every check of CHECKS; raise SpecError on the first failure, warn(message) for the rest.

    bundle is the directory relative paths (root.path) are resolved against. Each check that
    ran is recorded by `sys` (a Syscalls), with its time: the trace lists what was checked.
    """
    if not isinstance(config, dict):
        raise SpecError(f"config.json: expected object, got {_show(config)}")
    sys = sys or _syscalls()
    for check in CHECKS:
        with sys.around("check", check.__name__):
            check(config, bundle, warn)


def _syscalls():
    from mrunc.linux import Syscalls
    return Syscalls()


def validate_process(process, *, warn=print_warning):
    """Check a bare process object (`mrunc exec --process process.json`)."""
    check_strings({"process": process}, None, warn)
    check_unsupported({"process": process}, None, warn)
    process_fields(process, "process", warn)


def validate_resources(resources):
    """Check a bare linux.resources object (`mrunc update --resources file`)."""
    check_strings({"linux": {"resources": resources}}, None, None)
    check_unsupported({"linux": {"resources": resources}}, None, None)
    resources_fields(resources, "linux.resources")
