"""What every distilling task shares: owning the frozen teacher, initialising the student from it,
and remembering (in the task state saved with each checkpoint) which teacher file was used."""
import logging
from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import FairseqDataclass

from fairseq_selfteach.core.layer_map import copy_teacher_into_student, resolve_layer_map
from fairseq_selfteach.core.teacher import FrozenModelTeacher, Teacher

logger = logging.getLogger(__name__)


@dataclass
class TeacherConfig(FairseqDataclass):
    """The options every distilling task adds to its base task's config."""

    teacher_path: Optional[str] = field(
        default=None,
        metadata={
            "help": "trained full-depth checkpoint to distil from (offline self-teaching); it is "
            "frozen and never saved into the student's checkpoints (its path and sha256 are)"
        },
    )
    student_encoder_layer_map: str = field(
        default="first",
        metadata={
            "help": "teacher encoder layers the student's encoder starts from: first, last, "
            "every_other, or a comma list of 0-based teacher layers"
        },
    )
    # fairseq turns a bool field into a store_true flag, so the option is the negative one
    no_init_student_from_teacher: bool = field(
        default=False,
        metadata={
            "help": "start the student from random weights instead of copying the teacher's "
            "embeddings, mapped layers and output layers (projection, pooler, classification heads)"
        },
    )


def count_layers(model, side: str) -> int:
    return len(getattr(model, side).layers)


class TeacherTaskMixin:
    """Mixed into a fairseq task whose config has teacher_path, no_init_student_from_teacher and
    student_{side}_layer_map for each side in `layer_lists`. The task implements
    build_plain_model(model_cfg), which builds a model without any distillation step."""

    layer_lists = ()
    _teacher: Optional[Teacher] = None

    @property
    def teacher(self) -> Optional[Teacher]:
        """The frozen teacher, loaded on first use; None without --teacher-path."""
        if self._teacher is None and self.cfg.teacher_path:
            self._teacher = FrozenModelTeacher.load(
                self.cfg.teacher_path, self, self.build_plain_model
            )
        return self._teacher

    def prepare_student(self, model, from_checkpoint: bool):
        # from_checkpoint: fairseq-generate or export rebuilding a trained student; no teacher needed
        if from_checkpoint or not self.cfg.teacher_path:
            return model
        teacher = self.teacher
        maps = {}
        for side in self.layer_lists:
            t_layers = count_layers(teacher.model, side)
            s_layers = count_layers(model, side)
            try:
                maps[f"{side}.layers"] = resolve_layer_map(
                    getattr(self.cfg, f"student_{side}_layer_map"), t_layers, s_layers, side
                )
            except ValueError as e:
                raise ValueError(f"{e} (teacher: {teacher.path})") from e
        if not self.cfg.no_init_student_from_teacher:
            copy_teacher_into_student(model, teacher.state["model"], maps)
            logger.info(
                "student initialised from teacher %s: %s",
                teacher.path,
                ", ".join(f"{k} <- teacher {v}" for k, v in maps.items()),
            )
        self.state.merge_state_dict(
            {"teacher_path": teacher.path, "teacher_sha256": teacher.sha256, "teacher_layer_map": maps}
        )
        return model
