"""`--criterion sentence_prediction_self_distill` on a BERT sentence classifier: fairseq's
sentence_prediction plus the loss code translation uses (core/distill.py), reading one distribution per
sentence (the head, which pools inside itself, on layer k's output)."""
import copy
import math
from dataclasses import fields
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

import fairseq_selfteach  # noqa: F401  (registers the plugin)
from fairseq_selfteach.classification.bert.dictionary import BertDictionary
from fairseq_selfteach.classification.criterion import (
    SentencePredictionSelfDistillConfig,
    SentencePredictionSelfDistillCriterion,
)
from fairseq_selfteach.classification.bert.model import SelfteachBertConfig, SelfteachBertModel

HEAD = "sentence_classification_head"


def small_bert(layers=4, seed=0, pooling="cls", exit_heads="", exit_pooling=""):
    torch.manual_seed(seed)
    d = BertDictionary()
    for tok in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)]:
        d.add_symbol(tok)
    d._set_special_indices("test vocabulary")
    cfg = OmegaConf.create({f.name: f.default for f in fields(SelfteachBertConfig)})
    cfg.update({"encoder_layers": layers, "encoder_embed_dim": 32, "encoder_attention_heads": 4,
                "encoder_ffn_embed_dim": 64, "vocab_size": len(d), "max_position_embeddings": 64,
                "type_vocab_size": 2, "layer_norm_eps": 1e-12, "dropout": 0.0, "attention_dropout": 0.0,
                "pooling": pooling, "exit_heads": exit_heads, "exit_pooling": exit_pooling})
    model = SelfteachBertModel.build_from_dictionary(cfg, d)
    model.register_classification_head(HEAD, 3)
    with torch.no_grad():  # BERT's init (std 0.02) gives near-uniform classes: sharpen them
        model.classification_heads[HEAD].out_proj.weight.mul_(100)
    return model.eval(), d


def batch(d, lengths=(9, 6, 4, 7), seed=1):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    tokens = torch.full((len(lengths), T), d.pad())
    segments = torch.zeros_like(tokens)
    for i, n in enumerate(lengths):
        tokens[i, 0] = d.bos()
        tokens[i, 1:n] = torch.randint(5, len(d), (n - 1,), generator=g)
        segments[i, n // 2:n] = 1
    return {"id": torch.arange(len(lengths)), "nsentences": len(lengths), "ntokens": sum(lengths),
            "net_input": {"src_tokens": tokens, "segment_labels": segments,
                          "src_lengths": torch.tensor(lengths)},
            "target": torch.randint(0, 3, (len(lengths),), generator=g)}


def criterion(teacher=None, **kw):
    task = SimpleNamespace(label_dictionary=None, teacher=teacher)
    args = dict(classification_head_name=HEAD, kd_alpha=0.5, kd_temperature=1.0)
    args.update(kw)
    cfg = OmegaConf.merge(OmegaConf.structured(SentencePredictionSelfDistillConfig), args)
    return SentencePredictionSelfDistillCriterion(cfg, task)


def forward_and_exit(crit, model, s, k):
    """The criterion's top logits, the model's extra outputs, and exit k's logits."""
    top, extra = model(**s["net_input"], classification_head_name=HEAD)
    return top, extra, crit.exit_logits(model, extra, k, None)


def test_alpha_zero_is_sentence_prediction_cross_entropy():
    model, d = small_bert()
    s = batch(d)
    loss, sample_size, log = criterion(kd_alpha=0.0)(model, s)
    logits, _ = model(**s["net_input"], classification_head_name=HEAD)
    # fairseq's sentence_prediction criterion: nll_loss(log_softmax(logits)), summed, per sentence
    ref = F.nll_loss(F.log_softmax(logits, dim=-1, dtype=torch.float32), s["target"], reduction="sum")
    assert torch.allclose(loss, ref, atol=1e-6) and sample_size == 4
    assert log["nsentences"] == 4 and log["ncorrect"] == int(logits.argmax(-1).eq(s["target"]).sum())


def test_exit_is_the_first_k_layers_with_the_same_pooler_and_head():
    model, d = small_bert(layers=4)
    s = batch(d)
    crit = criterion(student_exits="2")
    crit(model, s)
    _, _, exit_logits = forward_and_exit(crit, model, s, 2)
    # a 2-layer model holding the first 2 layers, the pooler and the head
    student = copy.deepcopy(model)
    student.encoder.layers = student.encoder.layers[:2]
    truncated, _ = student(**s["net_input"], classification_head_name=HEAD)
    assert torch.allclose(exit_logits, truncated, atol=1e-6)


def test_mean_pooling_ignores_padding_and_exits_stay_exact():
    model, d = small_bert(layers=4, pooling="mean")
    s = batch(d)
    crit = criterion(student_exits="2")
    crit(model, s)
    top, extra, exit_logits = forward_and_exit(crit, model, s, 2)
    # the mean of the real tokens of layer 4, by hand, through the pooler and head
    hidden, mask = extra["inner_states"][4], extra["padding_mask"]
    means = torch.stack([hidden[i][~mask[i]].mean(0) for i in range(hidden.size(0))])
    pooler, head = model.encoder.pooler.dense, model.classification_heads[HEAD]
    assert torch.allclose(top, head.out_proj(torch.tanh(pooler(means))), atol=1e-5)
    # more padding changes nothing
    padded = copy.deepcopy(s)
    for key in ("src_tokens", "segment_labels"):
        x = padded["net_input"][key]
        fill = d.pad() if key == "src_tokens" else 0
        padded["net_input"][key] = torch.cat([x, torch.full((x.size(0), 5), fill)], dim=1)
    assert torch.allclose(model(**padded["net_input"], classification_head_name=HEAD)[0], top, atol=1e-5)
    # exit 2 is the 2-layer model
    student = copy.deepcopy(model)
    student.encoder.layers = student.encoder.layers[:2]
    assert torch.allclose(exit_logits, student(**s["net_input"], classification_head_name=HEAD)[0], atol=1e-5)


def test_online_loss_is_gold_plus_mixed_exit_terms():
    model, d = small_bert(layers=4)
    s = batch(d)
    loss, _, log = criterion(student_exits="1,2", kd_alpha=0.3, kd_temperature=2.0)(model, s)
    expected = log["gold_loss"] + sum(
        0.7 * log[f"exit{k}_gold_loss"] + 0.3 * log[f"exit{k}_kd_loss"] for k in (1, 2))  # kd: T²-scaled
    assert torch.allclose(loss, expected, atol=1e-5)
    assert log["kd_loss"] > 0 and "exit1_ncorrect" in log


def test_offline_kd_is_zero_when_the_student_is_the_teacher():
    model, d = small_bert()
    s = batch(d)

    class SameModelTeacher:
        def follow(self, student):
            pass

        def logits(self, sample, **kw):
            return model(**sample["net_input"], **kw)[0]

    loss, _, log = criterion(teacher=SameModelTeacher(), kd_alpha=0.5)(model, s)
    assert abs(float(log["kd_loss"])) < 1e-6
    assert torch.allclose(loss, 0.5 * log["gold_loss"], atol=1e-6)


def test_gradient_reaches_only_through_the_student_side():
    model, d = small_bert(layers=3)
    s = batch(d)
    model.train()
    loss, _, _ = criterion(student_exits="1", kd_alpha=1.0)(model, s)  # only the exit's KL
    loss.backward()
    # α = 1: the top layer's head gets gold gradient, layer 2 only from the top exit's gold term
    assert model.encoder.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_exit_at_the_top_layer_is_refused():
    model, d = small_bert(layers=3)
    with pytest.raises(ValueError, match="encoder has 3 layers"):  # an OptionError
        criterion(student_exits="3")(model, batch(d))


def regression_batch(d):
    s = batch(d)
    s["target"] = torch.tensor([0.5, 4.8, 2.25, 3.0])  # STS-B scores
    return s


def test_regression_alpha_zero_is_sentence_prediction_mse():
    model, d = small_bert(layers=3)
    model.register_classification_head(HEAD, 1)
    s = regression_batch(d)
    loss, sample_size, log = criterion(kd_alpha=0.0, regression_target=True)(model, s)
    pred, _ = model(**s["net_input"], classification_head_name=HEAD)
    # fairseq's sentence_prediction with --regression-target: mse_loss(logits, targets), summed
    ref = F.mse_loss(pred.view(-1).float(), s["target"], reduction="sum")
    assert torch.allclose(loss, ref, atol=1e-6) and sample_size == 4
    assert "ncorrect" not in log  # no accuracy for scores


def test_regression_online_kd_is_the_squared_difference_to_the_top_score():
    model, d = small_bert(layers=3)
    model.register_classification_head(HEAD, 1)
    s = regression_batch(d)
    crit = criterion(student_exits="1", kd_alpha=0.25, kd_temperature=4.0, regression_target=True)  # no T
    loss, _, log = crit(model, s)
    top, _, exit1 = forward_and_exit(crit, model, s, 1)
    exit1 = exit1.view(-1)
    assert torch.allclose(log["exit1_kd_loss"], ((exit1 - top.view(-1)) ** 2).sum(), atol=1e-5)
    assert torch.allclose(log["exit1_gold_loss"], ((exit1 - s["target"]) ** 2).sum(), atol=1e-5)
    expected = log["gold_loss"] + 0.75 * log["exit1_gold_loss"] + 0.25 * log["exit1_kd_loss"]
    assert torch.allclose(loss, expected, atol=1e-5)


def test_reduce_metrics_logs_per_sentence_terms():
    from fairseq.logging import metrics

    model, d = small_bert(layers=3)
    s = batch(d)
    _, _, log = criterion(student_exits="1")(model, s)
    with metrics.aggregate() as agg:
        SentencePredictionSelfDistillCriterion.reduce_metrics([log, log])
    values = agg.get_smoothed_values()
    assert math.isclose(values["nll_loss"], float(log["nll_loss"]) / 4 / math.log(2), rel_tol=1e-3)
    assert "exit1_accuracy" in values and "accuracy" in values and "exit1_kd_loss" in values


def test_a_regression_head_needs_regression_target():
    model, d = small_bert(layers=3)
    model.register_classification_head(HEAD, 1)
    with pytest.raises(ValueError, match="has 1 outputs but --regression-target is off"):
        criterion()(model, regression_batch(d))


def test_a_translation_model_is_refused_naming_self_distill():
    model, d = small_bert(layers=3)
    model.decoder = torch.nn.Module()  # looks like an encoder-decoder
    with pytest.raises(ValueError, match="use --criterion self_distill for translation models"):
        criterion()(model, batch(d))


def test_validation_logs_carry_the_glue_counts():
    model, d = small_bert(layers=3)
    s = batch(d)
    _, _, log = criterion()(model.eval(), s)
    pred = model(**s["net_input"], classification_head_name=HEAD)[0].argmax(-1)
    assert log["glue_n"] == 4
    assert sum(v for k, v in log.items() if k.startswith("glue_cm_")) == 4
    assert all(log[f"glue_cm_{int(t)}_{int(p)}"] >= 1 for t, p in zip(s["target"], pred))


def test_all_exits_weights_and_a_lower_teacher_exit():
    model, d = small_bert(layers=4)
    s = batch(d)
    crit = criterion(student_exits="all", exit_weights="2,0.5", teacher_exit=3, kd_alpha=0.3)
    loss, _, log = crit(model, s)
    assert crit.student_exits == [1, 2]
    _, _, exit3 = forward_and_exit(crit, model, s, 3)
    gold = F.nll_loss(F.log_softmax(exit3.float(), -1), s["target"], reduction="sum")
    assert torch.allclose(log["gold_loss"], gold, atol=1e-5)  # the teacher exit is layer 3, not 4
    expected = gold + sum(
        w * (0.7 * log[f"exit{k}_gold_loss"] + 0.3 * log[f"exit{k}_kd_loss"]) for k, w in ((1, 2.0), (2, 0.5)))
    assert torch.allclose(loss, expected, atol=1e-5)
    top = model.encoder.layers[3]
    grads = torch.autograd.grad(loss, list(top.parameters()), allow_unused=True)
    assert all(g is None or not g.any() for g in grads)  # layer 4 is left alone in this stage


def test_exit_heads_predict_through_their_own_pooler_and_head():
    model, d = small_bert(layers=4, exit_heads="all", exit_pooling="mean")
    assert sorted(model.classification_heads) == [HEAD, f"{HEAD}_exit1", f"{HEAD}_exit2", f"{HEAD}_exit3"]
    own = model.classification_heads[f"{HEAD}_exit2"]
    # its pooler starts as BERT's (pretrained) pooler, reading the mean of the real tokens
    assert torch.equal(own.pooler.dense.weight, model.encoder.pooler.dense.weight) and own.pooler.pooling == "mean"
    s = batch(d)
    crit = criterion(student_exits="2", kd_alpha=0.5)
    loss, _, _ = crit(model, s)
    _, extra, exit_logits = forward_and_exit(crit, model, s, 2)
    assert torch.allclose(exit_logits, own(extra["inner_states"][2], padding_mask=extra["padding_mask"]))
    shared = model.classification_heads[HEAD](extra["inner_states"][2], padding_mask=extra["padding_mask"])
    assert not torch.allclose(exit_logits, shared)
    # the exit's head learns from exit 2's loss; the unused exits' heads get nothing
    grads = dict(zip(["own", "unused"], torch.autograd.grad(
        loss, [own.out_proj.weight, model.classification_heads[f"{HEAD}_exit3"].out_proj.weight], allow_unused=True)))
    assert grads["own"].abs().sum() > 0 and grads["unused"] is None


def test_exporting_an_exit_keeps_its_own_head_and_pooling():
    from fairseq_selfteach.classification.exit_heads import keep_exit_head

    model, d = small_bert(layers=4, exit_heads="1,2", exit_pooling="mean")
    with torch.no_grad():
        model.classification_heads[f"{HEAD}_exit2"].pooler.dense.weight.add_(0.01)  # differs from the top's
    s = batch(d)
    crit = criterion(student_exits="2")
    _, _, exit_logits = forward_and_exit(crit, model, s, 2)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(("encoder.layers.2.", "encoder.layers.3."))}
    cfg = {"pooling": "cls", "exit_heads": "1,2", "exit_pooling": "mean"}
    state = keep_exit_head(state, cfg, 2)
    assert cfg == {"pooling": "mean", "exit_heads": "", "exit_pooling": ""}
    assert not any("_exit" in k for k in state)
    student, _ = small_bert(layers=2, pooling="mean")
    student.load_state_dict(state)
    assert torch.allclose(student(**s["net_input"], classification_head_name=HEAD)[0], exit_logits, atol=1e-6)


def test_exit_heads_must_be_below_the_top():
    with pytest.raises(ValueError, match="exit head must be on a layer between 1 and 3"):
        small_bert(layers=4, exit_heads="4")


def test_gradual_curriculum_switches_exits_on_from_the_top_down():
    """--exit-curriculum gradual on a 4-layer classifier, 100 updates, all exits on by half: exit 3 from
    update 25 (0.5·2/4 of 100), exit 2 from 38 (0.5·3/4), exit 1 from 50; validation always scores every exit."""
    model, d = small_bert(layers=4)
    s = batch(d)
    crit = criterion(student_exits="all", exit_curriculum="gradual", max_update=100)
    model.train()
    seen = {}
    for update in (0, 24, 25, 37, 38, 49, 50, 99):
        crit.set_num_updates(update)
        _, _, log = crit(model, s)
        seen[update] = sorted(int(k[4]) for k in log if k.startswith("exit") and k.endswith("_kd_loss"))
    assert seen == {0: [], 24: [], 25: [3], 37: [3], 38: [2, 3], 49: [2, 3], 50: [1, 2, 3], 99: [1, 2, 3]}
    model.eval()
    _, _, log = crit(model, s)
    assert all(f"exit{k}_kd_loss" in log for k in (1, 2, 3))


def test_layer_dropout_skips_encoder_layers_per_sentence_in_training_only():
    """--layer-dropout-max 0.9 on a 4-layer classifier (rates 0, 0.23, 0.53, 0.9 for layers 1-4): in
    evaluation the loss is the plain criterion's; in training some sentences see layer k's input as its
    output (B x T x C states: the skip is per sentence), reproducibly from torch's seed."""
    model, d = small_bert(layers=4)
    plain_model = copy.deepcopy(model)
    s = batch(d)
    plain, dropping = criterion(student_exits="all"), criterion(student_exits="all", layer_dropout_max=0.9)
    assert torch.equal(plain(plain_model, s)[0], dropping(model, s)[0])
    model.train(), plain_model.train()
    torch.manual_seed(3)
    _, extra = model(**s["net_input"], classification_head_name=HEAD)
    states = extra["inner_states"]
    skipped = [torch.equal(states[4][b], states[3][b]) for b in range(len(states[4]))]
    assert any(skipped), "at rate 0.9 some of the 4 sentences skip layer 4"
    model.eval()
    _, extra = model(**s["net_input"], classification_head_name=HEAD)
    assert not any(torch.equal(extra["inner_states"][4][b], extra["inner_states"][3][b]) for b in range(4))
    model.train()
    torch.manual_seed(3)
    trained = dropping(model, s)[0]
    torch.manual_seed(3)
    assert torch.equal(trained, dropping(model, s)[0])
    torch.manual_seed(3)
    assert not torch.equal(trained, plain(plain_model, s)[0])
