"""`mrunc update`: new limits for a container that is already running.

An update names only what changes (`{"memory": {"limit": 104857600}}`), but some cgroup files
need more than the changed field: v2's `memory.swap.max` is computed from swap *and* limit,
`cpu.max` holds quota *and* period. So, as runc does, the update is merged into the resources
the container was created with, and for every section the update touches (memory, cpu, pids...)
the whole merged section is written again; sections it does not touch are left alone. The merged
resources are then saved in the state file, so the next update starts from them.

What an update leaves out — and what runc's zero values mean — asks for nothing: a missing or
null field, 0 for the sizes and the cpu numbers (runc's "unset"), "" for cpus/mems, and a pids
limit of 0 (runc's `update` cannot tell it from "not given"), empty lists. Two more rules
from runc:
- `memory.limit: -1` without `memory.swap` also lifts the swap limit (else v1 would refuse a
  memory+swap limit below an unlimited memory limit);
- device rules cannot be changed by an update (runc ignores them; the engines send the full
  resources object, devices included): they are dropped, with a warning.
`memory.checkBeforeUpdate` applies to this update only and is not saved.
"""

import copy

ZERO_MEANS_UNSET = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod"),
    "blockIO": ("weight", "leafWeight"),
    "pids": ("limit",),
}


def _clean(value, zero_unset=()):
    """Drop what asks for nothing (see the module doc); None if nothing is left."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None or (k in zero_unset and v == 0) or v == "" or v == []:
                continue
            v = _clean(v)
            if v is not None:
                out[k] = v
        return out or None
    return value


def changes(update, warn=None):
    """The fields of an update that ask for something, by section."""
    out = {}
    for section, value in (update or {}).items():
        if section == "devices":
            if value is not None and warn:
                warn("update: linux.resources.devices cannot be changed on a running container "
                     "(ignored, as runc does)")
            continue
        v = _clean(value, ZERO_MEANS_UNSET.get(section, ())) if isinstance(value, dict) else value
        if v is None or v == []:
            continue
        out[section] = v
    return out


def merge(stored, changed):
    """The stored resources with the changes applied (dicts merged, lists replaced)."""
    merged = copy.deepcopy(stored or {})
    for section, value in changed.items():
        if isinstance(value, dict) and isinstance(merged.get(section), dict) and section != "unified":
            merged[section].update(copy.deepcopy(value))
        elif section == "unified" and isinstance(merged.get(section), dict):
            merged[section].update(value)
        else:
            merged[section] = copy.deepcopy(value)
    mem = changed.get("memory") or {}
    if mem.get("limit") == -1 and "swap" not in mem and "memory" in merged:
        merged["memory"]["swap"] = -1
    merged.get("memory", {}).pop("checkBeforeUpdate", None)
    return merged


def to_apply(merged, changed):
    """What to write now: each section the update touched, whole from the merged resources."""
    out = {section: copy.deepcopy(merged[section]) for section in changed if section in merged}
    if (changed.get("memory") or {}).get("checkBeforeUpdate"):
        out["memory"]["checkBeforeUpdate"] = True
    return out
