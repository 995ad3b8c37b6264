"""`mrunc network ACTION PATH`: the runtime's side of the sandbox's lab networks.

    up PLAN      make the lab's namespace and bridge          prints {"calls", "update"} (JSON)
    down PLAN    unpin the namespace (everything in it goes)   removes PLAN
    show PLAN    the lab's and its containers' interfaces, routes, neighbours (JSON)
    sweep DIR    `down` every plan in DIR whose sandbox process is gone (a killed kernel)

PLAN lives in the sandbox's per-user network directory (mode 0700, checked here too).
"""
import json
import os

from .plan import NetworkError, private_dir


def run(action, path):
    actions = {"up": _up, "down": _down, "show": _show, "sweep": _sweep}
    if action not in actions:
        raise NetworkError(f"network: unknown action {action!r} (up, down, show, sweep)")
    return actions[action](os.path.abspath(path))


def read_plan(path):
    private_dir(os.path.dirname(path), create=False)
    try:
        with open(path) as f:
            plan = json.load(f)
        plan["netns"], plan["name"]  # noqa: B018 — a plan has both
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NetworkError(f"{path}: not a lab network plan ({e})") from None
    holder = plan.get("holder")
    if holder and plan["netns"] != f"/proc/{holder[0]}/ns/net":
        raise NetworkError(f"{path}: a rootless lab's namespace is its holder's, not {plan['netns']}")
    if not holder and os.path.dirname(plan["netns"]) != os.path.dirname(path):
        raise NetworkError(f"{path}: its namespace file must be beside it, not {plan['netns']}")
    return plan


def _up(path):
    from . import lab
    log = []
    update = lab.up(read_plan(path), log)
    print(json.dumps({"calls": log, "update": update}))


def _down(path):
    from . import lab
    log = []
    lab.down(read_plan(path), log)
    os.unlink(path)
    print(json.dumps(log))


def _show(path):
    from . import lab
    plan = read_plan(path)
    pids = {m["container"]: m["pid"] for m in plan.get("members", {}).values()
            if m.get("pid") and os.path.exists(f"/proc/{m['pid']}/ns/net")}
    print(json.dumps(lab.views(plan, pids)))


def plan_owner_alive(plan):
    """Is the sandbox process that made this plan still running (the same process, not a pid
    that was reused)?"""
    from ..state import alive_as
    try:
        pid, start = plan["owner"]
        return alive_as(int(pid), start)
    except (KeyError, ValueError, TypeError, OSError):
        return False


def _sweep(directory):
    from . import lab
    if not os.path.isdir(directory):
        return
    private_dir(directory, create=False)
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.endswith(".json"):
            try:
                plan = read_plan(path)
            except NetworkError:
                continue
            if not plan_owner_alive(plan):
                lab.down(plan, [])
                os.unlink(path)
        elif name.endswith(".netns") and not os.path.exists(path[:-len(".netns")] + ".json") \
                and not os.path.exists(path[:-len(".netns")] + ".json.tmp"):
            lab.down({"netns": path}, [])           # pinned, but its plan is gone
