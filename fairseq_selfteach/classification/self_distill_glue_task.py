"""`--task self_distill_glue`: the GLUE task plus a frozen fine-tuned teacher (offline self-teaching
for sentence classification). The student is the teacher's first k encoder layers (or another
--student-encoder-layer-map) plus a copy of its embeddings, pooler and classification head; the loss
is `--criterion sentence_prediction_self_distill`, the same loss code as for translation. Gradual
self-teaching is this task run once per stage, each stage's student being the next --teacher-path.

    fairseq-train BIN --user-dir fairseq_selfteach --task self_distill_glue \\
        --teacher-path teacher/checkpoint_best.pt --arch bert_from_config \\
        --bert-config CONVERTED/config.json --encoder-layers 3 \\
        --criterion sentence_prediction_self_distill ...
"""
from dataclasses import dataclass

from fairseq.tasks import register_task

from fairseq_selfteach.core.teacher_task import TeacherConfig, TeacherTaskMixin
from fairseq_selfteach.classification.glue_task import GlueConfig, GlueTask


@dataclass
class SelfDistillGlueConfig(GlueConfig, TeacherConfig):
    pass


@register_task("self_distill_glue", dataclass=SelfDistillGlueConfig)
class SelfDistillGlueTask(TeacherTaskMixin, GlueTask):
    layer_lists = ("encoder",)
