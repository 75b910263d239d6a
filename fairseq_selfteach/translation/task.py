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
from fairseq_selfteach.translation.exits import add_exit_layer_norms, cut_decoder_to_exit
from selfteach_pipeline.errors import OptionError


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
    exit_layer: int = field(
        default=0,
        metadata={
            "help": "decoding (fairseq-generate, fairseq-interactive): decode with the first K decoder layers of "
            "the checkpoint and what follows its last layer (exit K's own final layer norm where it has one): "
            "exactly the student export_student --decoder-layers K writes; 0: every layer"
        },
    )
    speculative_exit: int = field(
        default=0,
        metadata={
            "help": "decoding with --beam 1: self-speculative greedy decoding, drafting --draft-tokens tokens with "
            "exit K (the first K decoder layers) and verifying them with the whole decoder in one pass; the "
            "hypotheses are exactly plain greedy decoding's; 0: off"
        },
    )
    draft_tokens: int = field(
        default=4,
        metadata={"help": "tokens drafted per step by --speculative-exit"},
    )


@register_task("self_distill_translation", dataclass=SelfDistillTranslationConfig)
class SelfDistillTranslationTask(TeacherTaskMixin, TranslationTask):
    layer_lists = ("encoder", "decoder")

    def build_model(self, cfg, from_checkpoint=False):
        # the norms exist before fairseq loads a checkpoint into the model, so a resumed or decoded
        # online model finds its own; the model's config (a legacy arch's holds every training option)
        # says whether a checkpoint has them, whatever the decoding command line says
        if not from_checkpoint and (self.cfg.exit_layer or self.cfg.speculative_exit):
            raise OptionError("--exit-layer and --speculative-exit are decoding options (fairseq-generate); "
                              "a training keeps every layer (--student-exits trains the exits)")
        model = super().build_model(cfg, from_checkpoint)
        spec = getattr(cfg, "exit_layer_norms", None)
        add_exit_layer_norms(model.decoder, self.cfg.exit_layer_norms if spec is None else spec)
        return model

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        if self.cfg.exit_layer:
            for model in models:
                cut_decoder_to_exit(model.decoder, self.cfg.exit_layer)
        if self.cfg.speculative_exit:
            from fairseq_selfteach.translation.speculative import SelfSpeculativeGenerator, check_speculative_options

            check_speculative_options(args, models, self.cfg.speculative_exit, self.cfg.draft_tokens,
                                      self.cfg.exit_layer)
            return SelfSpeculativeGenerator(
                models, self.target_dictionary, self.cfg.speculative_exit, self.cfg.draft_tokens,
                max_len_a=getattr(args, "max_len_a", 0), max_len_b=getattr(args, "max_len_b", 200),
                min_len=getattr(args, "min_len", 1), normalize_scores=not getattr(args, "unnormalized", False),
                len_penalty=getattr(args, "lenpen", 1), unk_penalty=getattr(args, "unkpen", 0),
                temperature=getattr(args, "temperature", 1.0))
        return super().build_generator(models, args, seq_gen_cls, extra_gen_cls_kwargs, **kwargs)
