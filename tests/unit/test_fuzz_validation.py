"""The config fuzzer's fast half: thousands of mutated configs through spec.validate in-process.

Every case must end as "ok" or as ONE SpecError line starting with a JSON path of that config —
never another exception, never a warning said twice (tests/fuzzing.py judges). The regression
corpus (tests/fuzz_corpus/) replays the cases the fuzzer once found, each with its exact
message. The slow half — the CLI and real containers — is tests/integration/test_fuzz.py; the long
run is `make fuzz`.
"""
import json
import os
import random

import pytest

import fuzzing
from mrunc import spec

SEED = int(os.environ.get("MRUNC_FUZZ_SEED", "20261207"))
CASES = 2500
CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz_corpus")


@pytest.fixture
def base(tmp_path):
    """The default config, its root a directory with fuzzing's symlink traps in it."""
    root = tmp_path / "rootfs"
    root.mkdir()
    for name, target in (("escape", "../../../.."), ("loop", "loop"), ("abs", "/etc")):
        os.symlink(target, root / name)
    config = spec.default_config()
    config["root"]["path"] = str(root)
    config["process"]["terminal"] = False
    return config, str(tmp_path)


def test_thousands_of_mutated_configs_give_ok_or_one_line_naming_a_json_path(base):
    config, bundle = base
    rng = random.Random(SEED)
    outcomes, problems = {"ok": 0, "refused": 0}, []
    for i in range(CASES):
        edits = fuzzing.edits_for(rng, config, fuzzing.VALIDATION_EDITS, rng.randint(1, 3))
        outcome, _, problem = fuzzing.judge_validation(fuzzing.apply(config, edits), bundle)
        outcomes["ok" if outcome == "ok" else "refused"] += 1
        if problem:
            problems.append((i, edits, problem))
    assert problems == [], f"seed {SEED}: {len(problems)} bad outcomes, first: {problems[0]}"
    # the mix is what makes the run worth anything: both outcomes, many of each
    assert outcomes["ok"] > CASES // 10 and outcomes["refused"] > CASES // 2, outcomes


def test_the_judge_catches_what_it_must():
    """The fuzzer's own checks can fail: a message without a path, with a path the config lacks,
    on two lines."""
    config = spec.default_config()
    assert fuzzing.path_problem(config, "mounts[1].options: x") is None
    assert fuzzing.path_problem(config, 'linux.sysctl["net.x"]: y') is not None   # no sysctl
    assert fuzzing.path_problem(config, "process.cwd: required") is None
    assert fuzzing.path_problem(config, "security: Too many open files") is not None
    assert fuzzing.path_problem(config, "mounts[99].destination: required") is not None
    assert fuzzing.path_problem(config, "hostname: a\nb") is not None
    assert fuzzing.path_problem(config, "Operation not permitted") is not None


def _corpus(run):
    for name in sorted(os.listdir(CORPUS)):
        with open(os.path.join(CORPUS, name)) as f:
            case = json.load(f)
        assert {"why", "edits", "expect"} <= set(case), name
        if bool(case.get("run")) == run:
            yield pytest.param(case, id=name[:-5])


@pytest.mark.parametrize("case", list(_corpus(run=False)))
def test_regression_corpus(base, case):
    config, bundle = base
    outcome, warnings, problem = fuzzing.judge_validation(fuzzing.apply(config, case["edits"]), bundle)
    assert (outcome, warnings, problem) == (case["expect"], case.get("warnings", []), None)


@pytest.mark.parametrize("case", list(_corpus(run=True)))
def test_container_corpus_cases_pass_validation(base, case):
    """The `run` cases are for fuzz_driver --replay; they must get past validation to mean it."""
    config, bundle = base
    assert fuzzing.judge_validation(fuzzing.apply(config, case["edits"]), bundle)[0] == "ok"
