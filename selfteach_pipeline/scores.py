"""The translation tables' BLEU and its paired test, in one place for the plugin's reports and the
pipelines' (no fairseq)."""
from typing import Sequence

N_SAMPLES = 1000
SEED = 12345  # sacreBLEU's default SACREBLEU_SEED


def detok_bleu():
    """The BLEU of the translation tables: detokenised hypotheses against raw references, lowercased."""
    import sacrebleu

    return sacrebleu.metrics.BLEU(lowercase=True)


def bleu_paired_p(system: Sequence[str], baseline: Sequence[str], references: Sequence[str]) -> float:
    """sacreBLEU's paired-bootstrap p-value of `system` against `baseline` (1,000 resamples, seed 12345).
    Identical outputs get 1.0: sacreBLEU's rule counts resampled differences strictly above the observed
    one, so for a zero difference it returns its smallest p, 1/1001, as if the two differed."""
    import logging

    if list(system) == list(baseline):
        return 1.0
    from sacrebleu.significance import PairedTest

    logging.getLogger("sacrebleu").setLevel(logging.WARNING)
    test = PairedTest([("baseline", list(baseline)), ("system", list(system))], {"BLEU": detok_bleu()},
                      [list(references)], test_type="bs", n_samples=N_SAMPLES)
    _signatures, scores = test()
    return float(scores["BLEU"][1].p_value)
