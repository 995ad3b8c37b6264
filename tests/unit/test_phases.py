"""mrunc.phases: the one list of phases, and every "module:function" in it is real code."""
import importlib
import inspect

from mrunc import phases


def test_order_is_the_kernels():
    assert phases.NAMES == ("spec", "clone", "mount", "pivot_root", "cgroup", "security", "exec")
    assert phases.names(network=True) == ("spec", "clone", "mount", "pivot_root", "cgroup",
                                          "security", "network", "exec")
    assert phases.after("security") == "exec"
    assert phases.after("security", network=True) == "network"
    assert phases.after("exec") is None


def test_every_phase_names_its_function_and_process():
    for p in phases.phases(network=True):
        assert p.process in (phases.RUNTIME, phases.CLONE, phases.INIT), p
        assert p.title and p.kernel, p
        for ref in (p.function, *p.also):
            module, _, name = ref.partition(":")
            fn = getattr(importlib.import_module(module), name)
            assert inspect.isfunction(fn) and fn.__doc__, f"{p.name}: {ref} has no docstring"
        assert phases.get(p.name) is p


def test_the_copies_are_gone():
    from mrunc import sandbox
    from mrunc.notebook import render
    assert sandbox.PHASES is phases.NAMES and render.PHASES is phases.NAMES
    assert set(render.PHASE_TEXT) == set(phases.names(network=True))
