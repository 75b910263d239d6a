"""The tables' BLEU and the paired tests (sacreBLEU's bootstrap, the exact McNemar test), in one place
for the plugin's reports and the pipelines' (no fairseq)."""
from typing import Sequence

import numpy as np

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


def mcnemar_p(system_correct, baseline_correct) -> float:
    """Exact (binomial) McNemar test, two-sided: of the examples exactly one of the two gets right,
    is the split different from half and half? 1.0 when there are none."""
    from scipy.stats import binomtest

    s, b = np.asarray(system_correct, dtype=bool), np.asarray(baseline_correct, dtype=bool)
    only_system, only_baseline = int(np.sum(s & ~b)), int(np.sum(~s & b))
    if only_system + only_baseline == 0:
        return 1.0
    return float(binomtest(only_system, only_system + only_baseline, 0.5).pvalue)
