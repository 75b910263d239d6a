"""`--task self_distill_translation`: fairseq's translation task plus a frozen teacher.

Offline self-teaching needs two things the criterion cannot do on its own: load the teacher, and
initialise the (shallower) student from the teacher's layers *before* fairseq restores
checkpoint_last.pt — so a resumed run keeps its trained weights. That is the task's build_model
(core/teacher_task.py), which is why the teacher lives with the task and the loss with the criterion.
"""
from dataclasses import dataclass, field

from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from fairseq_selfteach.core.teacher_task import TeacherConfig, TeacherTaskMixin


@dataclass
class SelfDistillTranslationConfig(TranslationConfig, TeacherConfig):
    student_decoder_layer_map: str = field(
        default="first",
        metadata={
            "help": "teacher decoder layers the student's decoder starts from: first, last, "
            "every_other, or a comma list of 0-based teacher layers"
        },
    )


@register_task("self_distill_translation", dataclass=SelfDistillTranslationConfig)
class SelfDistillTranslationTask(TeacherTaskMixin, TranslationTask):
    layer_lists = ("encoder", "decoder")
