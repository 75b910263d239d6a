"""The distillation core both families share: the KD math, the Teacher, layer maps, the teacher-owning
task mixin, export plumbing and checkpoint I/O. Nothing here registers anything with fairseq."""
