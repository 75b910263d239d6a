import pytest

from fairseq_selfteach.core.layer_map import resolve_layer_map


@pytest.mark.parametrize(
    "spec,teacher,student,expected",
    [("first", 6, 3, [0, 1, 2]), ("last", 6, 3, [3, 4, 5]), ("every_other", 6, 3, [0, 2, 4]),
     ("every_other", 5, 3, [0, 2, 4]), ("0,2,5", 6, 3, [0, 2, 5]), ("first", 4, 4, [0, 1, 2, 3])],
)
def test_maps(spec, teacher, student, expected):
    assert resolve_layer_map(spec, teacher, student, "decoder") == expected


@pytest.mark.parametrize(
    "spec,teacher,student,message",
    [("first", 3, 4, "greater than the teacher's 3"),
     ("every_other", 4, 3, "at least 5"),
     ("bogus", 6, 3, "unknown --student-decoder-layer-map 'bogus'"),
     ("0,1", 6, 3, "lists 2 layers but the student has 3"),
     ("0,1,6", 6, 3, r"names teacher layer\(s\) \[6\]"),
     ("0,0,1", 6, 3, r"names teacher layer\(s\) \[0\] more than once")],
)
def test_errors(spec, teacher, student, message):
    with pytest.raises(ValueError, match=message):
        resolve_layer_map(spec, teacher, student, "decoder")


def test_task_options_parse_through_fairseq():
    """The distilling tasks share TeacherConfig; each option reaches fairseq's parser."""
    import fairseq_selfteach  # noqa: F401
    from fairseq import options

    args = options.parse_args_and_arch(options.get_training_parser(), [
        "/tmp", "--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en",
        "--teacher-path", "T.pt", "--student-decoder-layer-map", "last",
        "--student-encoder-layer-map", "every_other", "--no-init-student-from-teacher"])
    assert (args.teacher_path, args.student_decoder_layer_map, args.student_encoder_layer_map,
            args.no_init_student_from_teacher) == ("T.pt", "last", "every_other", True)


def test_layer_keys_count_and_cut():
    from collections import OrderedDict

    from fairseq_selfteach.core.layer_map import keep_first_layers, layer_count, layer_index, split_layer_key

    assert split_layer_key("decoder.layers.10.fc1.weight", "decoder.layers") == (10, "fc1.weight")
    assert layer_index("decoder.layers.10.fc1.weight", "decoder.layers") == 10
    for other in ("decoder.layers_x.1.fc1.weight", "decoder.layer_norm.weight", "encoder.layers.1.fc1.weight",
                  "decoder.layers.1", "xdecoder.layers.1.fc1.weight"):
        assert layer_index(other, "decoder.layers") is None, other
    state = OrderedDict((k, i) for i, k in enumerate(
        ["embed.weight", "decoder.layers.0.a", "decoder.layers.2.a", "decoder.layers.1.a", "decoder.norm"]))
    assert layer_count(state, "decoder.layers") == 3 and layer_count(state, "encoder.layers") == 0
    kept = keep_first_layers(state, "decoder.layers", 2)
    assert type(kept) is OrderedDict and list(kept) == ["embed.weight", "decoder.layers.0.a", "decoder.layers.1.a",
                                                        "decoder.norm"]


def test_checkpoint_skeleton():
    from fairseq_selfteach.core.export import checkpoint_skeleton

    fresh = checkpoint_skeleton({"model": {}}, {"w": 1}, "none", {"source": "x"})
    assert fresh == {
        "args": None, "cfg": {"model": {}}, "model": {"w": 1},
        "optimizer_history": [{"criterion_name": "none", "optimizer_name": "none",
                               "lr_scheduler_state": {"best": None}, "num_updates": 0}],
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0}},
        "task_state": {}, "selfteach": {"source": "x"}}
    last = {"optimizer_name": "adam", "lr_scheduler_state": {"best": 2.5}, "num_updates": 70, "optimizer": "big"}
    kept = checkpoint_skeleton({}, {}, "cross_entropy", {}, last)["optimizer_history"]
    assert kept == [{"criterion_name": "cross_entropy", "optimizer_name": "adam",
                     "lr_scheduler_state": {"best": 2.5}, "num_updates": 70}]
