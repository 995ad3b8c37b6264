"""create, run and exec work with the cyclic garbage collector off, and a foreground run or exec
turns it back on when it starts to wait (mrunc.cli's NO_GC_VERBS)."""
import gc
import os
import weakref

import pytest

from mrunc import cli
from mrunc.process import foreground


@pytest.fixture
def gc_restored():
    was = gc.isenabled()
    gc.enable()
    frozen = gc.get_freeze_count()
    yield
    if gc.get_freeze_count() != frozen:
        gc.unfreeze()       # this test process's heap, frozen by a foreground wait: as it was
    if was:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.parametrize("verb", ["create", "run"])
def test_create_and_run_turn_it_off(tmp_path, gc_restored, verb):
    cli._main(["--root", str(tmp_path), verb, "--bundle", "/no/such/bundle", "x"])  # fails: no bundle
    assert not gc.isenabled()


def test_exec_turns_it_off(tmp_path, gc_restored):
    cli._main(["--root", str(tmp_path), "exec", "no-such-container", "true"])
    assert not gc.isenabled()


def test_other_verbs_leave_it_on(tmp_path, gc_restored):
    assert cli._main(["--root", str(tmp_path), "list", "-q"]) == 0
    assert cli._main(["--root", str(tmp_path), "state", "no-such-container"]) == 1
    assert gc.isenabled()


def test_a_stepped_create_leaves_it_on(tmp_path, gc_restored):
    r, w = os.pipe()        # the step channel (a person clicks Next): the verb takes `w` over
    try:
        cli._main(["--root", str(tmp_path), "create", "--step-fd", str(w), "--bundle",
                   "/no/such/bundle", "x"])         # fails (no bundle)
    finally:
        os.close(r)
    assert gc.isenabled()


def test_a_foreground_wait_turns_it_on(gc_restored):
    gc.disable()
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    assert foreground.stay(pid) == 3
    assert gc.isenabled()


class _Cyclic:
    pass


def test_the_wait_leaves_what_existed_to_no_collection(gc_restored):
    """Turned on, the collector does not walk what create made (gc.freeze): its first
    collection used to take ≈ 0.6 ms as `run true` ended. What is made later is collected."""
    gc.disable()
    frozen = gc.get_freeze_count()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    assert foreground.stay(pid) == 0
    assert gc.get_freeze_count() > frozen
    a = _Cyclic()
    a.me = a                        # a cycle: only the collector frees it
    gone = weakref.ref(a)
    del a
    gc.collect()
    assert gone() is None


def test_a_caller_with_the_collector_on_keeps_its_heap_unfrozen(gc_restored):
    frozen = gc.get_freeze_count()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    assert foreground.stay(pid) == 0
    assert gc.get_freeze_count() == frozen
