"""Self-speculative greedy decoding (LayerSkip, Elhoushi et al., 2024) for a fairseq Transformer.

Each step drafts N tokens one at a time with the first E decoder layers and exit E's output (what
`--exit-layer E` would decode), then runs the remaining layers once over the N+1 drafted positions,
reading the hidden states the draft left after layer E. The full model's greedy choices v_0..v_N at
those positions are exactly what plain greedy decoding would choose as long as the drafts agree, so the
step emits v_0..v_a, where d_0..d_{a-1} = v_0..v_{a-1} and d_a is the first wrong draft: 1 to N+1
tokens, each the full model's own. The first E layers' key/value caches are the full model's (the same
layers), so the draft's work is never recomputed.

Sentences in a batch accept different numbers of tokens, but every sentence feeds exactly N+1 positions
per step, so the caches stay rectangular: the positions of rejected drafts stay in them as holes, masked
out of self-attention through the caches' key padding mask, and each token gets its position in its
own sentence. Finished sentences leave the batch (fairseq's own cache reordering).

What plain fairseq-generate --beam 1 does is kept token for token: scores as log-softmax (with
--temperature), pad never chosen, --unkpen, --min-len, the length limit (--max-len-a/-b, the model's
positions) forcing EOS, BeamSearch's choice as the top of topk over the running score, and its sentence
scores (--lenpen, --unnormalized).
"""
import logging
import math
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairseq_selfteach.translation.exits import check_decoder_output, exit_projection
from selfteach_pipeline.errors import OptionError

logger = logging.getLogger(__name__)


def check_speculative_options(args, models, exit_layer: int, draft_tokens: int, cut_exit: int) -> None:
    """What --speculative-exit cannot honour, in one line each."""
    if cut_exit:
        raise OptionError("--speculative-exit drafts with an exit of the full model and verifies with all of it: "
                          "it cannot be combined with --exit-layer")
    if getattr(args, "sampling", False):
        raise OptionError("--speculative-exit is exact greedy decoding: it does not sample (drop --sampling)")
    for option, value, plain in (("--beam", getattr(args, "beam", 5), 1), ("--nbest", getattr(args, "nbest", 1), 1)):
        if value != plain:
            raise OptionError(f"--speculative-exit is exact greedy decoding: give {option} 1 (got {option} {value})")
    for option, field in (("--prefix-size", "prefix_size"), ("--no-repeat-ngram-size", "no_repeat_ngram_size")):
        if getattr(args, field, 0):
            raise OptionError(f"--speculative-exit does not support {option}")
    for option, field in (("--match-source-len", "match_source_len"), ("--constraints", "constraints"),
                          ("--print-alignment", "print_alignment"), ("--score-reference", "score_reference")):
        if getattr(args, field, False):
            raise OptionError(f"--speculative-exit does not support {option}")
    if getattr(args, "diverse_beam_groups", -1) > 0 or getattr(args, "diversity_rate", -1) > -1:
        raise OptionError("--speculative-exit does not support diverse beam search")
    if len(models) != 1:
        raise OptionError(f"--speculative-exit decodes one model; --path names {len(models)}")
    decoder = models[0].decoder
    check_decoder_output(decoder, "--speculative-exit")
    if getattr(decoder, "cross_self_attention", False):
        raise OptionError("--speculative-exit does not support --cross-self-attention")
    n = len(decoder.layers)
    if not 1 <= exit_layer < n:
        raise OptionError(f"--speculative-exit {exit_layer}: the model's decoder has {n} layers, so the draft exit "
                          f"must be between 1 and {n - 1}")
    if draft_tokens < 1:
        raise OptionError(f"--draft-tokens must be >= 1; got {draft_tokens}")


def _position_vectors(embed_positions, tokens: Tensor, positions: Tensor) -> Tensor:
    """The positional embeddings of `positions` (fairseq's position ids: padding_idx + 1 for the first
    token), B x T x C, for learned and sinusoidal tables alike."""
    weights = getattr(embed_positions, "weights", None)
    if weights is None:  # LearnedPositionalEmbedding (its forward refuses given positions when it has a pad)
        return F.embedding(positions, embed_positions.weight, embed_positions.padding_idx)
    need = int(positions.max()) + 1
    if need > weights.size(0):
        weights = embed_positions.get_embedding(need, embed_positions.embedding_dim,
                                                embed_positions.padding_idx).to(weights)
    return weights.index_select(0, positions.reshape(-1)).view(*positions.shape, -1).detach()


class SelfSpeculativeGenerator(nn.Module):
    """Drop-in for fairseq's SequenceGenerator under fairseq-generate --beam 1 (task.build_generator)."""

    def __init__(self, models, tgt_dict, draft_exit: int, draft_tokens: int, max_len_a: float = 0,
                 max_len_b: int = 200, min_len: int = 1, normalize_scores: bool = True, len_penalty: float = 1.0,
                 unk_penalty: float = 0.0, temperature: float = 1.0, max_len: int = 0):
        super().__init__()
        self.model = models[0]
        self.decoder = self.model.decoder
        self.draft_exit, self.draft_tokens = draft_exit, draft_tokens
        self.pad, self.unk, self.eos = tgt_dict.pad(), tgt_dict.unk(), tgt_dict.eos()
        self.vocab_size = len(tgt_dict)
        self.max_len_a, self.max_len_b, self.min_len = max_len_a, max_len_b, min_len
        self.max_len = max_len or self.model.max_decoder_positions()
        self.normalize_scores, self.len_penalty = normalize_scores, len_penalty
        self.unk_penalty, self.temperature = unk_penalty, temperature
        self.symbols_to_strip_from_output = {self.eos}
        if temperature <= 0:
            raise OptionError(f"--temperature must be > 0; got {temperature}")
        # per sentence and step: drafts made and accepted, tokens emitted; sentences whose EOS was an
        # accepted draft, and sentences stopped by the length limit
        self.stats = {"steps": 0, "drafted": 0, "accepted": 0, "emitted": 0, "eos_in_draft": 0, "length_limit": 0}

    # -- the decoder, a block of positions at a time
    def _embed(self, tokens: Tensor, positions: Tensor) -> Tensor:
        d = self.decoder  # as TransformerDecoderBase.extract_features_scriptable embeds them
        x = d.embed_scale * d.embed_tokens(tokens)
        if d.quant_noise is not None:
            x = d.quant_noise(x)
        if d.project_in_dim is not None:
            x = d.project_in_dim(x)
        if d.embed_positions is not None:
            x = x + _position_vectors(d.embed_positions, tokens, positions)
        if d.layernorm_embedding is not None:
            x = d.layernorm_embedding(x)
        return d.dropout_module(x).transpose(0, 1)  # T x B x C

    def _layers(self, x: Tensor, first: int, last: int, encoder_out, state) -> Tensor:
        """Decoder layers first..last-1 on the T new positions x (T x B x C), appended to their caches;
        each new position sees the cached ones (less the holes) and the new ones up to itself."""
        t, b = x.shape[:2]
        attn_mask = None
        if t > 1:
            future = torch.triu(torch.full((t, t), float("-inf"), device=x.device), 1).to(x.dtype)
            attn_mask = torch.cat([future.new_zeros(t, self._cached_length(state, first)), future], 1)
        enc = encoder_out["encoder_out"][0] if encoder_out["encoder_out"] else None
        enc_mask = encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
        new_mask = torch.zeros(b, t, dtype=torch.bool, device=x.device)  # keeps the caches' masks materialised
        for layer in self.decoder.layers[first:last]:
            x, _, _ = layer(x, enc, enc_mask, state, self_attn_mask=attn_mask, self_attn_padding_mask=new_mask)
        return x

    def _cached_length(self, state, layer: int) -> int:
        buf = self.decoder.layers[layer].self_attn._get_input_buffer(state)
        return 0 if buf.get("prev_key") is None else buf["prev_key"].size(2)

    def _mark_holes(self, state, holes: Tensor) -> None:
        """holes (B x T): the last T cached positions of each sentence that its decoding rejected."""
        for layer in self.decoder.layers:
            attn = layer.self_attn
            buf = attn._get_input_buffer(state)
            mask = buf["prev_key_padding_mask"].clone()
            mask[:, -holes.size(1):] = torch.maximum(mask[:, -holes.size(1):], holes.to(mask.dtype))
            buf["prev_key_padding_mask"] = mask
            attn._set_input_buffer(state, buf)

    def _lprobs(self, logits: Tensor, steps: Tensor, max_len: int) -> Tensor:
        """fairseq's per-step scores and rules; logits B x V (or T x B x V with steps per row)."""
        lprobs = torch.log_softmax((logits / self.temperature if self.temperature != 1 else logits).float(), -1)
        lprobs[lprobs != lprobs] = -math.inf
        lprobs[..., self.pad] = -math.inf
        lprobs[..., self.unk] -= self.unk_penalty
        at_limit = steps >= max_len
        if at_limit.any():
            eos_column = lprobs[..., self.eos].clone()
            lprobs[at_limit] = -math.inf
            lprobs[..., self.eos] = torch.where(at_limit, eos_column, lprobs[..., self.eos])
        lprobs[..., self.eos] = lprobs[..., self.eos].masked_fill(steps < self.min_len, -math.inf)
        return lprobs

    @torch.no_grad()
    def generate(self, models, sample: Dict, prefix_tokens: Optional[Tensor] = None, constraints=None,
                 bos_token: Optional[int] = None, **kwargs) -> List[List[Dict]]:
        if prefix_tokens is not None or constraints is not None:
            raise OptionError("--speculative-exit does not support --prefix-size or constraints")
        net_input = sample["net_input"]
        src_tokens = net_input["src_tokens"]
        bsz, src_len = src_tokens.size()[:2]
        max_len = min(int(self.max_len_a * src_len + self.max_len_b), self.max_len - 1)
        assert self.min_len <= max_len, "min_len cannot be larger than max_len, please adjust these!"
        device = src_tokens.device
        encoder_out = self.model.encoder.forward_torchscript(net_input)
        state: Dict[str, Dict[str, Optional[Tensor]]] = {}
        e, n, top = self.draft_exit, self.draft_tokens, len(self.decoder.layers)
        pad_pos = self.decoder.embed_positions.padding_idx if self.decoder.embed_positions is not None else self.pad
        alive = torch.arange(bsz, device=device)  # original index of each sentence still decoding
        last = torch.full((bsz,), self.eos if bos_token is None else bos_token, dtype=torch.long, device=device)
        length = torch.zeros(bsz, dtype=torch.long, device=device)  # tokens emitted so far
        score = torch.zeros(bsz, device=device)  # BeamSearch's running score
        out_tokens: List[List[int]] = [[] for _ in range(bsz)]
        out_scores: List[List[float]] = [[] for _ in range(bsz)]
        finished: List[Optional[Dict]] = [None] * bsz
        while alive.numel():
            b = alive.numel()
            # draft: d_j for steps length+j with exit e, feeding last, d_0, .., d_{n-1} through layers < e
            feed, hidden, drafts = last, [], []
            for j in range(n + 1):
                pos = (pad_pos + 1 + length + j).clamp(max=pad_pos + 1 + max_len)
                h = self._layers(self._embed(feed[:, None], pos[:, None]), 0, e, encoder_out, state)
                hidden.append(h)
                if j < n:  # a draft's rules only change how many are accepted, so the raw logits do
                    logits = exit_projection(self.decoder, h[0], e)
                    logits[:, self.pad] = -math.inf
                    feed = logits.argmax(-1)
                    drafts.append(feed)
            # verify: layers e.. once over the n+1 positions; v_j is the full model's choice at step length+j
            h = self._layers(torch.cat(hidden, 0), e, top, encoder_out, state)
            steps = length[None, :] + torch.arange(n + 1, device=device)[:, None]  # (n+1) x B
            lprobs = self._lprobs(exit_projection(self.decoder, h, top), steps, max_len)
            # n x B; with n = 0 (draft_tokens 0, the benchmark's baseline) this loop is plain greedy decoding
            drafted = torch.stack(drafts) if drafts else torch.empty(0, b, dtype=torch.long, device=device)
            chosen = torch.empty(n + 1, b, dtype=torch.long, device=device)
            running = torch.empty(n + 1, b, device=device)
            run = score  # BeamSearch.step with one beam: the top of topk(2) over score + lprobs
            for j in range(n + 1):
                top2 = torch.topk(lprobs[j] + run[:, None], k=min(2, self.vocab_size - 1))
                chosen[j], running[j] = top2.indices[:, 0], top2.values[:, 0]
                run = running[j]
            agree = torch.cumprod((drafted == chosen[:n]).long(), 0).sum(0)  # drafts accepted, a
            done = torch.zeros(b, dtype=torch.bool, device=device)
            holes = torch.arange(n + 1, device=device)[None, :] > agree[:, None]  # fed d_a.. were wrong
            new_last, new_score = chosen[agree, torch.arange(b)], running[agree, torch.arange(b)]
            chosen_l, running_l, agree_l = chosen.t().tolist(), running.t().tolist(), agree.tolist()
            for i, k in enumerate(alive.tolist()):
                for j in range(agree_l[i] + 1):
                    out_tokens[k].append(chosen_l[i][j])
                    out_scores[k].append(running_l[i][j])
                    self.stats["emitted"] += 1
                    if chosen_l[i][j] == self.eos:  # EOS inside the accepted drafts ends the sentence there
                        finished[k] = self._hypothesis(out_tokens[k], out_scores[k])
                        done[i] = True
                        self.stats["eos_in_draft"] += int(j < agree_l[i])
                        self.stats["length_limit"] += int(len(out_tokens[k]) == max_len + 1)
                        break
            self.stats["steps"] += b
            self.stats["drafted"] += b * n
            self.stats["accepted"] += int(agree.sum())
            if holes.any():
                self._mark_holes(state, holes)
            last, score, length = new_last, new_score, length + agree + 1
            if done.any():
                keep = (~done).nonzero().squeeze(1)
                alive, last, score, length = alive[keep], last[keep], score[keep], length[keep]
                if keep.numel():
                    self.decoder.reorder_incremental_state_scripting(state, keep)
                    encoder_out = self.model.encoder.reorder_encoder_out(encoder_out, keep)
        logger.info(self.summary())
        return [[f] for f in finished]

    def summary(self) -> str:
        s = self.stats
        rate = 100.0 * s["accepted"] / max(s["drafted"], 1)
        return (f"speculative decoding (exit {self.draft_exit}, {self.draft_tokens} drafts a step), so far: "
                f"{s['steps']} sentence-steps, {s['accepted']} of {s['drafted']} drafts accepted ({rate:.1f} %), "
                f"{s['emitted'] / max(s['steps'], 1):.2f} tokens a step; {s['eos_in_draft']} sentences ended "
                f"inside a draft, {s['length_limit']} at the length limit")

    def _hypothesis(self, tokens: List[int], running: List[float]) -> Dict:
        """As SequenceGenerator.finalize_hypos writes it: positional scores are the running score's steps."""
        cumulative = torch.tensor(running)
        positional = cumulative.clone()
        positional[1:] = cumulative[1:] - cumulative[:-1]
        total = cumulative[-1].clone()
        if self.normalize_scores:
            total /= len(tokens) ** self.len_penalty
        return {"tokens": torch.tensor(tokens), "score": total, "attention": None,
                "alignment": torch.empty(0), "positional_scores": positional}
