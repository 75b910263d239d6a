"""What every distilling task shares: owning the frozen teacher, initialising the student from it,
and remembering (in the task state saved with each checkpoint) which teacher file was used."""
import logging
import os
from dataclasses import dataclass, field
from typing import Optional


from fairseq_selfteach.core.distill import CurriculumTaskMixin
from fairseq_selfteach.core.exact_resume import ExactResumeTaskMixin, ResumeConfig, saved_task_state
from fairseq_selfteach.core.layer_map import copy_teacher_into_student, resolve_layer_map
from fairseq_selfteach.core.teacher import FrozenModelTeacher, Teacher
from fairseq_selfteach.core.teacher_cache import CachedTeacher, TeacherCache
from selfteach_pipeline.errors import OptionError

logger = logging.getLogger(__name__)


@dataclass
class TeacherConfig(ResumeConfig):
    """The options every distilling task adds to its base task's config."""

    teacher_path: Optional[str] = field(
        default=None,
        metadata={
            "help": "trained full-depth checkpoint to distil from (offline self-teaching); it is "
            "frozen and never saved into the student's checkpoints (its path and sha256 are)"
        },
    )
    teacher_cache: Optional[str] = field(
        default=None,
        metadata={
            "help": "a folder written by fairseq_selfteach.cli.teacher_cache for --teacher-path on this "
            "data: training batches read the teacher's outputs from it instead of running the teacher "
            "(validation still runs it); refused when the teacher file or the data differ from the cache's"
        },
    )
    student_encoder_layer_map: str = field(
        default="first",
        metadata={
            "help": "teacher encoder layers the student's encoder starts from: first, last, "
            "every_other, or a comma list of 0-based teacher layers"
        },
    )
    resume_with_another_teacher: bool = field(
        default=False,
        metadata={
            "help": "resume from a checkpoint (checkpoint_last.pt, --restore-file) whose recorded teacher "
            "sha256 differs from --teacher-path's, which is otherwise refused; the log says it was forced"
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


class TeacherTaskMixin(ExactResumeTaskMixin, CurriculumTaskMixin):
    """Mixed in front of a fairseq task whose config has teacher_path, no_init_student_from_teacher
    and student_{side}_layer_map for each side in `layer_lists`.

    build_model is the one hook that runs before fairseq restores checkpoint_last.pt, so the student
    is initialised from the teacher there, and a resumed run keeps its trained weights."""

    layer_lists = ()
    _teacher: Optional[Teacher] = None

    @property
    def teacher(self) -> Optional[Teacher]:
        """The frozen teacher, loaded on first use; None without --teacher-path (or use_teacher)."""
        if self._teacher is None and self.cfg.teacher_path:
            self._teacher = FrozenModelTeacher.load(
                self.cfg.teacher_path, self, self.build_plain_model
            )
            if getattr(self.cfg, "teacher_cache", None):
                cache = TeacherCache.open(self.cfg.teacher_cache, self._teacher.sha256, self.cfg.data)
                self._teacher = CachedTeacher(self._teacher, cache)
        elif self._teacher is None and getattr(self.cfg, "teacher_cache", None):
            raise OptionError("--teacher-cache needs the --teacher-path it was made from (its weights start "
                              "the student and it answers validation batches)")
        return self._teacher

    def use_teacher(self, teacher: Teacher) -> None:
        """Distil from a teacher already in memory (a benchmark, a cached teacher) instead of
        loading --teacher-path."""
        self._teacher = teacher

    def build_model(self, cfg, from_checkpoint=False):
        return self.prepare_student(super().build_model(cfg, from_checkpoint), from_checkpoint)

    def build_plain_model(self, model_cfg):
        """The base task's model, without any distillation step (the teacher's own)."""
        return super().build_model(model_cfg, from_checkpoint=True)

    def prepare_student(self, model, from_checkpoint: bool):
        # from_checkpoint: fairseq-generate or export rebuilding a trained student; no teacher needed
        teacher = None if from_checkpoint else self.teacher
        if teacher is None:
            return model
        maps = {}
        for side in self.layer_lists:
            t_layers = teacher.layer_count(side)
            s_layers = len(getattr(model, side).layers)
            try:
                maps[f"{side}.layers"] = resolve_layer_map(
                    getattr(self.cfg, f"student_{side}_layer_map"), t_layers, s_layers, side
                )
            except ValueError as e:
                raise OptionError(f"{e} (teacher: {teacher.path})") from e
        self.check_resumed_teacher(teacher)
        if not self.cfg.no_init_student_from_teacher:
            try:
                copy_teacher_into_student(model, teacher.state_dict(), maps)
            except ValueError as e:
                raise OptionError(f"{e} (teacher: {teacher.path})") from e
            logger.info(
                "student initialised from teacher %s: %s",
                teacher.path,
                ", ".join(f"{k} <- teacher {v}" for k, v in maps.items()),
            )
        record = {"teacher_path": teacher.path, "teacher_sha256": teacher.sha256, "teacher_layer_map": maps}
        if teacher.cached:
            record["teacher_cache"] = teacher.cache.path
        self.state.merge_state_dict(record)
        return model

    def check_resumed_teacher(self, teacher: Teacher) -> None:
        """A resumed student must keep distilling from the teacher its checkpoints record (their task
        state holds its sha256); another file is refused, naming both, unless forced."""
        path = self.resume_path()
        if path is None or not os.path.isfile(path):
            return
        recorded = recorded_teacher_sha256(path)
        if recorded is None or recorded == teacher.sha256:
            return
        if getattr(self.cfg, "resume_with_another_teacher", False):
            logger.warning(f"--resume-with-another-teacher: resuming {path}, trained with the teacher of sha256 "
                           f"{recorded}, with --teacher-path {teacher.path} of sha256 {teacher.sha256}")
            return
        raise OptionError(
            f"{path} was trained with the teacher of sha256 {recorded}, but --teacher-path {teacher.path} has "
            f"sha256 {teacher.sha256}: resuming would switch teachers mid-training (--resume-with-another-teacher "
            f"does it anyway; or --save-dir elsewhere to start afresh)")


def recorded_teacher_sha256(path: str) -> Optional[str]:
    """The teacher sha256 a student checkpoint's task state records (None: none recorded)."""
    return saved_task_state(path).get("teacher_sha256")
