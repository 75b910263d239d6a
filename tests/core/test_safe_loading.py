"""Checkpoints load in torch's safe (weights_only) mode; a crafted pickle is refused."""
import os
import pickle
import shutil

import pytest
import torch

from fairseq_selfteach.core.checkpoint_io import CheckpointError, load_checkpoint
from tests.helpers import USER_DIR, run


class Exploit:
    """Unpickling this runs a shell command, unless the loader refuses the global."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint_evil.pt"
    torch.save({"cfg": None, "model": {}, "payload": Exploit(marker)}, path)
    return path, marker


def test_plugin_loader_refuses_a_crafted_checkpoint(malicious_checkpoint):
    path, marker = malicious_checkpoint
    with pytest.raises(CheckpointError, match="refused to load .*checkpoint_evil.pt"):
        load_checkpoint(str(path))
    assert not marker.exists()


def _truncated(path):
    torch.save({"model": {"w": torch.zeros(300, 100)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_FILES = {  # kind: (how to make it, what the one line says)
    "a text file": (lambda p: p.write_text("# README\nnot a checkpoint\n"), "it is not a PyTorch checkpoint"),
    "a few random bytes": (lambda p: p.write_bytes(b"\x01\x02\x03\x04\x05"), "it is not a PyTorch checkpoint"),
    # torch's safe unpickler reads "a" as an opcode and pops an empty stack: an IndexError, not an UnpicklingError
    "five bytes the unpickler chokes on": (lambda p: p.write_bytes(b"abc\0\1"), "it is not a PyTorch checkpoint"),
    "zero-length": (lambda p: p.write_bytes(b""), "the file is empty"),
    "truncated": (_truncated, "it ends early"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_file_that_is_no_checkpoint_is_explained_in_one_line(kind, tmp_path):
    make, phrase = BAD_FILES[kind]
    path = tmp_path / "teacher.pt"
    make(path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(str(path))
    message = str(e.value)
    assert message.startswith(f"cannot read checkpoint {path}: ") and phrase in message, message
    assert "\n" not in message and "weights_only" not in message


def test_the_refusal_says_the_file_holds_code_and_never_advises_unsafe_loading(malicious_checkpoint):
    path, marker = malicious_checkpoint
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(str(path))
    message = str(e.value)
    assert "it contains code (unpickling it would call posix.system)" in message and str(path) in message
    assert "\n" not in message and "weights_only" not in message.lower()
    assert not marker.exists()


def assert_refused_in_one_line(p, path, marker):
    """Refused, with one line that names the file and says it holds code, and no advice to load unsafely."""
    assert p.returncode != 0
    assert f"error: refused to load {path}: it contains code (unpickling it would call posix.system)" in p.stderr
    assert "Traceback" not in p.stderr and "weights_only" not in p.stderr, p.stderr[-2000:]
    assert not marker.exists()


def test_fairseq_generate_with_the_plugin_refuses_it(malicious_checkpoint, toy_data):
    path, marker = malicious_checkpoint
    p = run(["fairseq-generate", toy_data, "--path", path, "--user-dir", USER_DIR, "--cpu"],
            check=False)
    assert_refused_in_one_line(p, path, marker)


def test_resuming_from_a_crafted_checkpoint_is_refused(malicious_checkpoint, toy_data, tmp_path):
    """fairseq-train --restore-file: fairseq's own loader, read in torch's safe mode."""
    path, marker = malicious_checkpoint
    p = run(["fairseq-train", toy_data, "--user-dir", USER_DIR, "--arch", "transformer_iwslt_de_en",
             "--encoder-layers", "1", "--decoder-layers", "1", "--optimizer", "adam", "--lr", "1e-3",
             "--max-tokens", "512", "--cpu", "--max-update", "1", "--save-dir", tmp_path / "s",
             "--restore-file", path], check=False)
    assert_refused_in_one_line(p, path, marker)


def test_teacher_path_to_a_crafted_checkpoint_is_refused(malicious_checkpoint, toy_data, tmp_path):
    path, marker = malicious_checkpoint
    p = run(["fairseq-train", toy_data, "--user-dir", USER_DIR, "--task", "self_distill_translation",
             "--teacher-path", path, "--arch", "transformer_iwslt_de_en_dec3", "--criterion",
             "self_distill", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "512", "--cpu",
             "--max-update", "1", "--save-dir", tmp_path / "s"], check=False)
    assert_refused_in_one_line(p, path, marker)


def test_a_teacher_path_the_unpickler_chokes_on_is_one_line_naming_it(toy_data, tmp_path):
    """b"abc\\0\\1" ends in an IndexError inside torch's safe unpickler, not its UnpicklingError."""
    path = tmp_path / "teacher.pt"
    path.write_bytes(b"abc\0\1")
    p = run(["fairseq-train", toy_data, "--user-dir", USER_DIR, "--task", "self_distill_translation",
             "--teacher-path", path, "--arch", "transformer_iwslt_de_en_dec3", "--criterion",
             "self_distill", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "512", "--cpu",
             "--max-update", "1", "--save-dir", tmp_path / "s"], check=False)
    assert p.returncode != 0
    assert f"error: cannot read checkpoint {path}: it is not a PyTorch checkpoint" in p.stderr, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "IndexError" not in p.stderr, p.stderr[-2000:]


def _hf_dir_with_a_crafted_bin(path, minilm_dir):
    folder = path.parent / "hf"
    folder.mkdir()
    for name in ("config.json", "vocab.txt"):
        shutil.copyfile(os.path.join(minilm_dir, name), folder / name)
    shutil.copyfile(path, folder / "pytorch_model.bin")
    return folder / "pytorch_model.bin", ["--hf-dir", folder, "--out", path.parent / "converted"]


# entry point: (the command, given the crafted file and the toy data; what it would have written)
ENTRY_POINTS = {
    "export": (lambda path, data: ["python", "-m", "fairseq_selfteach.cli.export_student", "--checkpoint", path,
                                   "--out", path.parent / "exported.pt", "--decoder-layers", 1], "exported.pt"),
    "parameter counts": (lambda path, data: ["python", "-m", "fairseq_selfteach.cli.param_count", path, "--json"],
                         None),
    "GLUE evaluation": (lambda path, data: ["python", "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", data,
                                            "--path", path, "--json", path.parent / "scores.json", "--cpu"],
                        "scores.json"),
    "teacher cache": (lambda path, data: ["python", "-m", "fairseq_selfteach.cli.teacher_cache", data, "--task",
                                          "self_distill_translation", "--teacher-path", path, "--arch",
                                          "transformer_iwslt_de_en", "--criterion", "self_distill", "--cpu",
                                          "--cache-out", path.parent / "cache"], "cache"),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS) + ["HF conversion of a .bin"])
def test_every_entry_point_refuses_a_crafted_pickle_in_one_line(entry, malicious_checkpoint, toy_data, minilm_dir):
    """One line naming the file and saying it holds code, no advice to load unsafely, no traceback, the
    command never run, nothing written."""
    path, marker = malicious_checkpoint
    if entry == "HF conversion of a .bin":
        path, args = _hf_dir_with_a_crafted_bin(path, minilm_dir)
        command, written = ["python", "-m", "fairseq_selfteach.cli.convert_hf_bert", *args], "converted"
    else:
        make, written = ENTRY_POINTS[entry]
        command = make(path, toy_data)
    p = run(command, check=False)
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if "refused to load" in line]
    assert len(lines) == 1 and f"refused to load {path}: it contains code (unpickling it would call posix.system)" \
        in lines[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "weights_only" not in p.stderr
    assert not marker.exists()
    if written:
        assert not (malicious_checkpoint[0].parent / written).exists()


def test_the_allow_list_is_argparse_namespace_and_the_broadcast_state(malicious_checkpoint):
    import argparse

    from fairseq_selfteach.core.checkpoint_io import BROADCAST_SAFE_GLOBALS, CHECKPOINT_SAFE_GLOBALS

    assert CHECKPOINT_SAFE_GLOBALS == [argparse.Namespace]
    # exactly the data classes of fairseq's broadcast state (tests/core/test_distributed.py resumes
    # through the broadcast that needs them); nothing that runs a command or imports a module
    names = {f"{getattr(g, '__module__', 'typing')}.{getattr(g, '__qualname__', g)}" for g in BROADCAST_SAFE_GLOBALS}
    assert names == {
        "fairseq.distributed.utils._TensorPlaceholder", "omegaconf.dictconfig.DictConfig",
        "omegaconf.listconfig.ListConfig", "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata",
        "omegaconf.nodes.AnyNode", "typing.Any", "collections.defaultdict", "builtins.dict",
        "builtins.int", "builtins.list",
    }
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    # torch.load's default stays the safe one after importing the plugin
    path, marker = malicious_checkpoint
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not marker.exists()
