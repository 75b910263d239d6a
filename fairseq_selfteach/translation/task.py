"""`--task self_distill_translation`: fairseq's translation task plus a frozen teacher.

Offline self-teaching needs two things the criterion cannot do on its own: load the teacher, and
initialise the (shallower) student from the teacher's layers *before* fairseq restores
checkpoint_last.pt — so a resumed run keeps its trained weights. build_model is the one hook that
runs at that moment, which is why the teacher lives with the task and the loss with the criterion.
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

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        return self.prepare_student(model, from_checkpoint)

    def build_plain_model(self, model_cfg):
        return TranslationTask.build_model(self, model_cfg, from_checkpoint=True)
