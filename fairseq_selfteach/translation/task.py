"""`--task self_distill_translation`: fairseq's translation task plus a frozen teacher.

Offline self-teaching needs two things the criterion cannot do on its own: load the teacher, and
initialise the (shallower) student from the teacher's layers *before* fairseq restores
checkpoint_last.pt — so a resumed run keeps its trained weights. That is the task's build_model
(core/teacher_task.py), which is why the teacher lives with the task and the loss with the criterion.
For the same reason the task adds the exits' own final layer norms (--exit-layer-norms,
translation/exits.py): they must exist before a checkpoint is loaded into the model.
"""
from dataclasses import dataclass, field

from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from fairseq_selfteach.core.teacher_task import TeacherConfig, TeacherTaskMixin
from fairseq_selfteach.translation.exits import add_exit_layer_norms


@dataclass
class SelfDistillTranslationConfig(TranslationConfig, TeacherConfig):
    student_decoder_layer_map: str = field(
        default="first",
        metadata={
            "help": "teacher decoder layers the student's decoder starts from: first, last, "
            "every_other, or a comma list of 0-based teacher layers"
        },
    )
    exit_layer_norms: str = field(
        default="",
        metadata={
            "help": "online self-teaching with a pre-norm decoder (--decoder-normalize-before): comma list of "
            "decoder layers, or 'all' (every layer below the top), whose exits get a final layer norm of "
            "their own (a copy of the decoder's to start with) instead of sharing it; export_student "
            "--decoder-layers K makes exit K's the exported model's final layer norm"
        },
    )


@register_task("self_distill_translation", dataclass=SelfDistillTranslationConfig)
class SelfDistillTranslationTask(TeacherTaskMixin, TranslationTask):
    layer_lists = ("encoder", "decoder")

    def build_model(self, cfg, from_checkpoint=False):
        # the norms exist before fairseq loads a checkpoint into the model, so a resumed or decoded
        # online model finds its own; the model's config (a legacy arch's holds every training option)
        # says whether a checkpoint has them, whatever the decoding command line says
        model = super().build_model(cfg, from_checkpoint)
        spec = getattr(cfg, "exit_layer_norms", None)
        add_exit_layer_norms(model.decoder, self.cfg.exit_layer_norms if spec is None else spec)
        return model
