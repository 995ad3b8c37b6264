"""The hot verbs import only what they need.

An engine runs `state`, `start`, `kill`, `delete` (and `list`, `--version`) as separate commands
over and over; each heavy module imported costs about as much as the interpreter's start itself
(../shared/PERF.md: re, json, enum via signal or socket, subprocess, ctypes). Each verb runs here
under `-X importtime` against a real container, and the test names every module it should not
have imported and what imported it.
"""
import os
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.root

# Never on a hot verb (the package of each imported module is what is checked).
HEAVY = {"re", "enum", "json", "signal", "socket", "selectors", "subprocess", "ctypes", "struct",
         "threading", "argparse", "typing", "dataclasses", "functools", "collections", "inspect",
         "tempfile", "shutil", "uuid", "logging", "traceback", "site", "pyroute2", "ipywidgets",
         "IPython", "ipykernel",
         # mrunc export's machinery: imported inside that verb only
         "nbclient", "nbconvert", "nbformat", "jupyter_client", "jupyter_core", "zmq", "jinja2"}


# mrunc's own modules a hot verb may import (exact names): the command line, the lifecycle's
# operations (mrunc.lifecycle, not all of mrunc.api: nor mrunc.moreverbs, the other verbs') and
# the state directory. Of the cgroup package, only what reads the cgroup create recorded in state.json
# (mrunc.cgroups.recorded): state (is it paused? — the freezer file), pause and resume (write
# it), delete (rmdir the recorded directories). Never the factory, the managers or the layout
# discovery (mrunc.cgroups.factory, layout — mountinfo's parser —, base, v1, v2): finding the
# cgroup again costs as much as the verb's own work. Not kill (running or paused, it signals
# either), start, --version; not hooks without hooks. --version reads and writes no JSON:
# not fastjson (whose _json is a shared library to load, ≈ 0.3 ms). Signal numbers
# (mrunc.signals) only for kill: not for start, state, list, pause, resume, nor for delete of a
# stopped container. `state` changes nothing: not the lifecycle's operations (mrunc.lifecycle).
# No verb here raises an error, so none imports mrunc.errors' classes (imported where an error
# is raised: ≈ 0.1 ms). --version: the command line alone.
OWN = {"mrunc", "mrunc.cli"}
# The verbs after --version read their modules' code from one file (mrunc.codecache, which
# imports no os); its writing half (mrunc.codesave) only in the command that writes it anew,
# once after a change to a source.
OWN_STATE = OWN | {"mrunc.plainjson", "mrunc.userdirs", "mrunc.lifecycle", "mrunc.state",
                   "mrunc.paths", "mrunc.codecache", "mrunc.codesave"}
# Reading the freezer's file (state, list: is it paused?) takes the cgroup files' reader alone
# (mrunc.cgroups.files), not all of mrunc.cgroups.fs, which writes (pause, resume) and removes
# (delete).
READ = {"mrunc.cgroups", "mrunc.cgroups.recorded", "mrunc.cgroups.files"}
RECORDED = READ | {"mrunc.cgroups.fs"}
FREEZER = READ | {"mrunc.cgroups.freezer"}
OWN_MODULES = {"--version": OWN, "start": OWN_STATE, "kill": OWN_STATE | {"mrunc.signals"},
               "state": OWN_STATE - {"mrunc.lifecycle"} | FREEZER,
               "list": OWN_STATE | FREEZER,
               "pause": OWN_STATE | FREEZER | RECORDED, "resume": OWN_STATE | FREEZER | RECORDED,
               # a stopped container's cgroup: rmdir'd from the record, without fs (and files)
               "delete": OWN_STATE | {"mrunc.cgroups", "mrunc.cgroups.recorded"}}
# kill --all and delete --force of a running container signal every process of its cgroup from
# what create recorded (mrunc.cgroups.recorded, freezer: frozen meanwhile), without the
# factory and the managers (≈ 1 ms of CPU); delete waits for init (mrunc.gone).
OWN_MODULES["kill --all"] = OWN_MODULES["kill"] | FREEZER | RECORDED
OWN_MODULES["delete --force"] = OWN_MODULES["delete"] | FREEZER | RECORDED | {"mrunc.signals",
                                                                           "mrunc.gone"}
# Light modules of the standard library that these verbs need no more (each costs an import):
# pwd names a user only in a refusal (and in list's OWNER column); _json, a shared library, is
# loaded with mrunc.fastjson, which only commands that write state.json (create, update) or read
# other JSON use: the others read state.json and print a state with mrunc.plainjson.
# And not `os`: ≈ 1 ms of CPU, a tenth of such a command (its _collections_abc alone ≈ 0.5) —
# they call its C module, posix, and name paths with mrunc.paths.
NO_OS = {"os", "stat", "posixpath", "genericpath", "_collections_abc"}
# errno: the cgroup files' reader needs its names only when a call failed. gc: only create, run
# and exec turn the collector off (a built-in module costs an import too, ≈ 40 µs).
NOT_NEEDED = {"pwd", "errno", "gc", "_json"} | NO_OS
# What is imported before the code cache is installed comes the usual way (a .pyc each, found by
# the path finder): for the verbs that use the cache, only the command line itself.
BEFORE_CACHE = {"mrunc", "mrunc.cli"}
NOT_NEEDED_BY = {"list": NO_OS | {"_json"}}


def unexpected_own(verb, found):
    """mrunc modules beyond what the verb needs, and the light ones of NOT_NEEDED."""
    ok, never = OWN_MODULES[verb], NOT_NEEDED_BY.get(verb, NOT_NEEDED)
    return sorted(f"{mod} (via {' <- '.join(chain) or 'the verb itself'})" for mod, chain in found
                  if (mod.split(".")[0] == "mrunc" and mod not in ok) or mod in never)


def imports(mr, *args):
    """The modules `mrunc --root R *args` imports, as (name, chain of importers) — run as the
    launcher runs it: isolated, no site, main() of mrunc.cli as __main__'s."""
    code = (f"import sys; sys.path[:] = {[p for p in sys.path if p]!r}; sys.argv[0] = 'mrunc'; "
            "from mrunc.cli import main; sys.exit(main())")
    # stderr to a file: a created container inherits it, a pipe would not end until it exits
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", code,
                            "--root", mr.root, *args], stdout=subprocess.DEVNULL, stderr=err,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        err.seek(0)
        report = err.read()
    assert p.returncode == 0, report
    got = []
    for line in report.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        name = line.split("|")[2]
        if not name.strip() or name.strip() == "imported package":
            continue
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        # importtime prints a module after its own imports: deeper lines came before their parent
        got.append((depth, name.strip()))
    out = []
    for i, (depth, mod) in enumerate(got):
        chain, want = [], depth - 1
        for d, m in got[i + 1:]:
            if d == want:
                chain.append(m)
                want -= 1
        out.append((mod, chain))
    return out


def before_cache(found):
    """mrunc's modules imported before (or by) mrunc.codecache — not read from the cache."""
    names = [m for m, _ in found]
    return sorted(m for m in names[:names.index("mrunc.codecache")]
                  if m.split(".")[0] == "mrunc" and m not in BEFORE_CACHE)


def heavy(mod):
    return mod.split(".")[0] in HEAVY


def offenders(found):
    """The heavy modules imported, each with who imported it; not those a heavy one pulled in."""
    return [f"{mod} (via {' <- '.join(chain) or 'the verb itself'})"
            for mod, chain in found if heavy(mod) and not any(map(heavy, chain))]


def test_hot_verbs_import_nothing_heavy(mr):
    cid = mr.new_id()
    b = mr.bundle(args=["sleep", "100"])
    mr.cli("create", "--bundle", b, cid, check=True)
    bad = {}
    for verb in (["--version"], ["state", cid], ["list"], ["start", cid], ["state", cid],
                 ["pause", cid], ["state", cid], ["list"], ["resume", cid], ["kill", cid, "KILL"]):
        found = imports(mr, *verb)
        assert any(m == "mrunc.cli" for m, _ in found)
        # run as the program, a verb that acts on containers reads its code from one file
        assert ("mrunc.codecache" in {m for m, _ in found}) == (verb[0] != "--version"), verb
        if verb[0] != "--version":
            assert not before_cache(found), (verb, before_cache(found))
        if offenders(found) or unexpected_own(verb[0], found):
            bad[verb[0]] = offenders(found) + unexpected_own(verb[0], found)
    st = mr.cli("state", cid, check=True).stdout
    for _ in range(500):    # kill is asynchronous: delete wants it stopped
        if '"stopped"' in st:
            break
        st = mr.cli("state", cid, check=True).stdout
    found = imports(mr, "delete", cid)
    assert not before_cache(found), before_cache(found)
    if offenders(found) or unexpected_own("delete", found):
        bad["delete"] = offenders(found) + unexpected_own("delete", found)
    assert not os.path.exists(os.path.join(mr.root, cid)), "delete did not delete"
    run = mr.new_id()
    mr.cli("run", "-d", "--bundle", b, run, check=True)
    for verb in (["kill", "--all", run, "CONT"], ["delete", "--force", run]):
        found = imports(mr, *verb)
        key = " ".join(verb[:2])
        if offenders(found) or unexpected_own(key, found):
            bad[key] = offenders(found) + unexpected_own(key, found)
    assert not os.path.exists(os.path.join(mr.root, run)), "delete --force did not delete"
    assert not bad, "heavy or unneeded imports on hot verbs:\n" + "\n".join(
        f"  {verb}: {', '.join(mods)}" for verb, mods in bad.items())


# mrunc's own modules that create, run and exec must not import for the plain containers below
# (root, no hooks, no --trace): each costs them 0.1-0.3 ms of CPU. The cgroup manager of the
# other layout, the disabled one, usage figures (events, stats); subordinate ids (rootless
# only); the record (--trace and the stepper only); `mrunc spec`'s default config and `mrunc
# features`' document; hooks; the notebook side; the unit tests' fake Syscalls. None of them
# imports mrunc.api: create calls process.parent, run mrunc.oneshot, exec process.exec
# directly. exec joins the cgroup create recorded (mrunc.cgroups.recorded), without the factory
# and the managers, and takes what it shares with init from process.common, not init; neither
# create nor exec loads the lifecycle's other operations (mrunc.lifecycle: run's start and
# delete).
NOT_FOR_CONTAINERS = {"mrunc.cgroups.disabled", "mrunc.cgroups.usage", "mrunc.cgroups.events",
                      "mrunc.security.subids", "mrunc.record", "mrunc.spec.defaults",
                      "mrunc.spec.featuresdoc", "mrunc.hooks", "mrunc.doctor", "mrunc.snapshot",
                      "mrunc.watch", "mrunc.moreverbs", "mrunc.api", "mrunc.linux.recording"}
NOT_FOR_CONTAINER_PACKAGES = ("mrunc.sandbox", "mrunc.notebook", "mrunc.network")
# The checks of config fields these containers do not have (mrunc.spec.checks loads each only
# for a config with its field): seccomp's only where the config has a filter.
RARE_CHECKS = {"mrunc.spec.rarechecks"}
SECCOMP_CHECK = "mrunc.spec.seccompcheck"
PURE_V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def unneeded_for_containers(verb, found, seccomp=False):
    """mrunc modules create/run/exec imported though the container did not need them
    (`seccomp`: the config has a filter) — and `os` (NO_OS), with or without a filter: they call
    posix and name paths with mrunc.paths, as the short verbs do. For them os was ≈ 0.25 MiB of
    their peak RSS (the runtime's: what it imports, init runs) and ≈ 1 ms of CPU."""
    bad = set(NOT_FOR_CONTAINERS) | RARE_CHECKS | (set() if seccomp else {SECCOMP_CHECK}) | NO_OS
    if verb in ("create", "exec"):
        bad.add("mrunc.lifecycle")      # start, kill, delete…: only run uses them
    if verb in ("create", "run"):
        bad.add("mrunc.cgroups.freezer")    # the managers name its file; exec asks: paused?
    if verb == "exec":
        bad |= {"mrunc.cgroups.factory", "mrunc.cgroups.layout", "mrunc.cgroups.base",
                "mrunc.cgroups.v1", "mrunc.cgroups.v2", "mrunc.process.init"}
    if not PURE_V2:
        bad.add("mrunc.cgroups.v2")     # v1 and hybrid hosts: the v1 manager alone
    return sorted(f"{mod} (via {' <- '.join(chain) or 'the verb itself'})" for mod, chain in found
                  if mod in bad or mod.startswith(NOT_FOR_CONTAINER_PACKAGES))


def test_create_run_exec_import_only_the_syscall_layer(mr):
    """create, run and exec need mrunc.linux (the one syscall layer) and nothing else heavy: no
    json/re, socket, signal's enums — and not the `ctypes` package (≈ 3 ms and 1 MiB each time):
    mrunc.linux calls C through `_ctypes`, its C core (mrunc.linux.ffi), even when init builds a
    seccomp filter with libseccomp; nor `struct` (its C module `_struct` is built in)."""
    allowed = set()      # nothing heavy at all
    cid, sec = mr.new_id(), mr.new_id()

    def seccomp(cfg):   # engines always pass one: the path that builds it must stay light too
        cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    bad = {}
    for verb, filtered in ((["run", "--bundle", mr.bundle(args=["true"]), mr.new_id()], False),
                           (["create", "--bundle", mr.bundle(args=["sleep", "100"]), cid], False),
                           (["exec", cid, "true"], False),
                           (["run", "--bundle", mr.bundle(seccomp, args=["true"]), mr.new_id()],
                            True),
                           (["run", "-d", "--bundle", mr.bundle(seccomp, args=["sleep", "100"]),
                             sec], True),
                           (["exec", sec, "true"], False),     # builds the filter (and keeps it)
                           (["exec", sec, "true"], False)):    # loads the kept one
        found = [(m, chain) for m, chain in imports(mr, *verb) if m.split(".")[0] not in allowed]
        unneeded = unneeded_for_containers(verb[0], found, seccomp=filtered)
        if offenders(found) or unneeded:
            bad[" ".join(verb[:2])] = offenders(found) + unneeded
        if filtered:    # the filter was checked: by the code that checks it
            assert SECCOMP_CHECK in {m for m, _ in found}
        # run as the program, the verb imports through its one-file code cache
        assert "mrunc.codecache" in {m for m, _ in found}, verb
    assert not bad, "heavy or unneeded imports:\n" + "\n".join(
        f"  {verb}: {', '.join(mods)}" for verb, mods in bad.items())


@pytest.mark.userns
def test_create_whose_runtime_opens_bind_sources_stays_light(mr):
    """Root, a user namespace and a bind mount (as the bench's busybox bundle has them):
    the runtime's helper opens the bind sources (mrunc.process.sources). Nobody reads the
    record, so neither it nor init imports mrunc.record."""
    def userns_bind(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [
            {"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(mr.tmp),
                              "options": ["rbind", "ro"]})
    found = imports(mr, "run", "--bundle", mr.bundle(userns_bind, args=["true"]), mr.new_id())
    assert "mrunc.process.sources" in {m for m, _ in found}     # the helper was used
    assert not offenders(found) + unneeded_for_containers("run", found)
