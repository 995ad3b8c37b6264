"""No cgroups: rootless without a delegated v2 subtree, or no cgroup filesystem at all.

The container still runs, in the caller's cgroup, with no limits. Every method is a no-op, except
two that would otherwise lie: `set()` refuses any resource it cannot apply (naming the first field
and why), and `freeze()` refuses to pretend a container is paused.

Device rules are the one exception for rootless containers (runc does the same): inside a user
namespace mknod is impossible and host device nodes keep their host permissions, so the rules
the engines always send are not what protects the host.
"""

from mrunc.errors import CgroupError

from .base import R, Manager, requested


class DisabledManager(Manager):
    layout = "disabled"
    plans_ahead = False     # nothing to plan: set() refuses what it cannot apply

    def __init__(self, reason, path="", rootless=False):
        super().__init__({}, {"": path} if path else {}, rootless)
        self.reason = reason

    def set(self, resources):
        asked = requested(resources)
        if self.rootless:
            asked = [p for p in asked if not p.startswith(R + ".devices")]
        if asked:
            raise CgroupError(f"{asked[0]}: cannot be applied: {self.reason}")

    def freeze(self):
        raise CgroupError(f"cannot freeze: {self.reason}")

    def _plan(self, resources):
        return []
