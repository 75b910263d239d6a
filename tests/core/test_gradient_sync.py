"""Self-teaching under torch's DistributedDataParallel, as fairseq's `--ddp-backend pytorch_ddp` (its
default on GPUs) wraps the model, and under fairseq's legacy_ddp (#12). fairseq builds the torch
wrapper with CUDA device ids, so on CPU the model is wrapped here the same way (DDP, then fairseq's
ModuleProxyWrapper) in a one-process gloo group: DDP's reducer behaves as in several processes (it
stops at the next step when a parameter's gradient is missing, or arrives after it was marked unused),
which is what the criteria must foresee.

For each configuration and each wrapper: the criterion refuses it in one line exactly when the same
steps, with the check bypassed, really do stop; under legacy_ddp every configuration trains."""
import socket

import pytest
import torch
import torch.distributed as dist
from fairseq.distributed import LegacyDistributedDataParallel, ModuleProxyWrapper
from torch.nn.parallel import DistributedDataParallel

import fairseq_selfteach.core.distill as distill
from selfteach_pipeline.errors import OptionError
from tests.classification.test_criterion import batch, small_bert
from tests.classification.test_criterion import criterion as glue_criterion
from tests.translation.test_criterion import setup as criterion_setup

STEPS = 3  # DDP stops at the second forward after an unfinished reduction, or in the first backward


@pytest.fixture(scope="module", autouse=True)
def process_group():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


NORMS = ["--task", "self_distill_translation", "--decoder-normalize-before", "--exit-layer-norms"]
ROTATIONAL = ["--task", "self_distill_translation", "--exit-curriculum", "rotational", "--max-update", "100"]
# name: (options, a step may leave parameters without a gradient, exits have parameters of their own)
TRANSLATION = {
    "online exit 2": (["--student-exits", "2"], False, False),
    "every exit": (["--student-exits", "all"], False, False),
    "online-gradual stage": (["--teacher-exit", "3", "--student-exits", "2"], True, False),
    # a skipped layer still runs (torch.where): its parameters get a zero gradient, not none
    "layer dropout": (["--student-exits", "2", "--layer-dropout-max", "0.6"], False, False),
    # the exits the curriculum turns off share the decoder's output layers: nothing idle
    "rotational curriculum": (ROTATIONAL + ["--student-exits", "2,3"], False, False),
    "rotational curriculum, exits with norms": (ROTATIONAL + ["--student-exits", "2,3"] + NORMS[2:] + ["2,3"],
                                                True, True),
    "exit norms on every layer, one exit": (NORMS + ["all", "--student-exits", "2"], True, True),
    "an exit norm on the exit": (NORMS + ["2", "--student-exits", "2"], False, True),
}
CLASSIFICATION = {  # name: (criterion options, --exit-heads, idle, parts)
    "online exit 2": (dict(student_exits="2"), "", False, False),
    "online-gradual stage, shared head": (dict(teacher_exit=3, student_exits="2"), "", True, False),
    "exit heads on every layer, one exit": (dict(student_exits="2"), "all", True, True),
    "an exit head on the exit": (dict(student_exits="2"), "2", False, True),
    "online-gradual stage, an exit head": (dict(teacher_exit=3, student_exits="2"), "2", True, True),
}


def translation_case(toy_data, name):
    _, model, criterion, sample = criterion_setup(toy_data, "--criterion", "self_distill", "--kd-alpha", "0.5",
                                                  *TRANSLATION[name][0])
    return model.train(), criterion, [sample] * STEPS


def classification_case(name):
    options, heads = CLASSIFICATION[name][:2]
    model, d = small_bert(exit_heads=heads)
    return model.train(), glue_criterion(**options), [batch(d, seed=i) for i in range(STEPS)]


def cases(toy_data):
    for name, (_, idle, parts) in TRANSLATION.items():
        yield f"translation: {name}", idle, parts, lambda n=name: translation_case(toy_data, n)
    for name, (_, _, idle, parts) in CLASSIFICATION.items():
        yield f"classification: {name}", idle, parts, lambda n=name: classification_case(n)


def steps(model, criterion, samples, wrapper):
    """Training steps with the model wrapped as fairseq wraps it; the error that stops them, or None."""
    torch.manual_seed(0)
    if wrapper == "legacy_ddp":
        wrapped = ModuleProxyWrapper(LegacyDistributedDataParallel(model, dist.group.WORLD))
    else:
        wrapped = ModuleProxyWrapper(DistributedDataParallel(model, find_unused_parameters=wrapper == "find_unused"))
    try:
        for update, sample in enumerate(samples):
            criterion.set_num_updates(update)
            loss, _, _ = criterion(wrapped, sample)
            loss.backward()
            if wrapper == "legacy_ddp":
                wrapped.all_reduce_grads()  # what fairseq's trainer calls after the backward
    except (OptionError, RuntimeError) as e:
        return e
    return None


@pytest.mark.parametrize("wrapper", ["pytorch_ddp", "find_unused"])
def test_the_criteria_refuse_exactly_what_ddp_stops_at(toy_data, monkeypatch, wrapper):
    for name, idle, parts, build in cases(toy_data):
        expected = idle if wrapper == "pytorch_ddp" else parts
        refused = steps(*build(), wrapper)
        assert isinstance(refused, OptionError) == expected, (name, refused)
        if expected:  # one line, naming the cause and the fairseq option that takes it
            assert "\n" not in str(refused), name
            way_out = "--ddp-backend legacy_ddp" if parts else "add --find-unused-parameters"
            assert way_out in str(refused), (name, str(refused))
        with monkeypatch.context() as m:  # the same steps with the check bypassed: does DDP itself stop?
            m.setattr(distill, "check_gradient_sync", lambda model, idle, outside: None)
            stopped = steps(*build(), wrapper)
        assert (stopped is not None) == expected, (name, stopped)
        if stopped is not None:
            assert ("finished reduction" if wrapper == "pytorch_ddp" else "ready only once") in str(stopped), name


def test_under_legacy_ddp_every_configuration_trains(toy_data):
    for name, _, _, build in cases(toy_data):
        assert steps(*build(), "legacy_ddp") is None, name
