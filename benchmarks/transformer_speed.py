"""Training speed: lib.transformer against d2l's Transformer, same configuration, one run.

d2l's configuration from its Transformer chapter: 2 blocks, 32 hidden units, 64 FFN units,
4 heads, dropout 0.1, batches of 64 sentence pairs of 10 steps. Both models train on the
same batches of the translation corpus with Adam (lr 0.005) and gradient clipping at 1.

d2l 1.0.3's library holds the encoder (``d2l.TransformerEncoder``) and every building block
but not the decoder, which its chapter defines in a notebook cell. ``D2LDecoder`` below
assembles that decoder from d2l's own blocks the way the chapter does (its blocks keep the
inputs of earlier steps as state; training masks the future with per-query valid lengths),
and the d2l step follows ``d2l.Trainer``: its masked loss, ``Trainer.clip_gradients`` and
a default ``torch.optim.Adam``, without the live plot.

Run: ``python -m benchmarks.transformer_speed [--device cuda] [--steps 60] [--compile [--compile-mode reduce-overhead]] [--floor]``.
``--floor`` adds two rows that are not models but bounds: lib's step with attention and dropout
removed, and with each attention and dropout call replaced by an autograd call that computes
nothing (the fastest any compiled kernel could be, since it still has to be called).
Tokens per second count source plus target positions (padding included) of each batch.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn
from torch.nn import functional as F

from lib.attention import MultiHeadAttention
from lib.device import resolve_device, seed_everything
from lib.dropout import Dropout
from lib.transformer import Transformer, TransformerConfig, masked_cross_entropy, teacher_forcing
from lib.translation import load_translation


def d2l_transformer(src_vocab: int, tgt_vocab: int, cfg: TransformerConfig) -> nn.Module:
    """d2l's encoder-decoder built from d2l's library blocks (see the module docstring)."""
    from d2l import torch as d2l

    class D2LDecoderBlock(nn.Module):
        def __init__(self, i: int) -> None:
            super().__init__()
            self.i = i
            self.attention1 = d2l.MultiHeadAttention(cfg.num_hiddens, cfg.num_heads, cfg.dropout)
            self.addnorm1 = d2l.AddNorm(cfg.num_hiddens, cfg.dropout)
            self.attention2 = d2l.MultiHeadAttention(cfg.num_hiddens, cfg.num_heads, cfg.dropout)
            self.addnorm2 = d2l.AddNorm(cfg.num_hiddens, cfg.dropout)
            self.ffn = d2l.PositionWiseFFN(cfg.ffn_num_hiddens, cfg.num_hiddens)
            self.addnorm3 = d2l.AddNorm(cfg.num_hiddens, cfg.dropout)

        def forward(self, X, state):
            enc_outputs, enc_valid_lens, previous = state
            # The chapter's state: every block keeps the inputs it has seen so far.
            key_values = X if previous[self.i] is None else torch.cat([previous[self.i], X], dim=1)
            previous[self.i] = key_values
            dec_valid_lens = None
            if self.training:  # query t may look at positions 1..t
                B, T, _ = X.shape
                dec_valid_lens = torch.arange(1, T + 1, device=X.device).repeat(B, 1)
            Y = self.addnorm1(X, self.attention1(X, key_values, key_values, dec_valid_lens))
            Z = self.addnorm2(Y, self.attention2(Y, enc_outputs, enc_outputs, enc_valid_lens))
            return self.addnorm3(Z, self.ffn(Z)), state

    class D2LDecoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(tgt_vocab, cfg.num_hiddens)
            self.pos_encoding = d2l.PositionalEncoding(cfg.num_hiddens, cfg.dropout)
            self.blks = nn.Sequential()
            for i in range(cfg.num_blks):
                self.blks.add_module(f"block{i}", D2LDecoderBlock(i))
            self.dense = nn.LazyLinear(tgt_vocab)

        def forward(self, X, state):
            X = self.pos_encoding(self.embedding(X) * math.sqrt(cfg.num_hiddens))
            self.attention_weights = [[None] * len(self.blks) for _ in range(2)]
            for i, blk in enumerate(self.blks):
                X, state = blk(X, state)
                self.attention_weights[0][i] = blk.attention1.attention.attention_weights
                self.attention_weights[1][i] = blk.attention2.attention.attention_weights
            return self.dense(X), state

    class D2LSeq2Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = d2l.TransformerEncoder(
                src_vocab, cfg.num_hiddens, cfg.ffn_num_hiddens, cfg.num_heads, cfg.num_blks, cfg.dropout)
            self.decoder = D2LDecoder()

        def forward(self, src, dec_X, src_valid_len):
            enc = self.encoder(src, src_valid_len)
            return self.decoder(dec_X, [enc, src_valid_len, [None] * cfg.num_blks])[0]

    return D2LSeq2Seq()


def d2l_step(model, optimizer, trainer, batch, pad: int, bos: int) -> None:
    src, src_len, tgt, _ = batch
    logits = model(src, teacher_forcing(tgt, bos), src_len)
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none")
    mask = (tgt.reshape(-1) != pad).float()  # d2l's Seq2Seq.loss
    loss = (losses * mask).sum() / mask.sum()
    optimizer.zero_grad()
    with torch.no_grad():
        loss.backward()
        trainer.clip_gradients(1, model)
        optimizer.step()


def lib_step(model, optimizer, batch, bos: int) -> None:
    src, src_len, tgt, tgt_len = batch
    loss = masked_cross_entropy(model(src, src_len, teacher_forcing(tgt, bos)), tgt, tgt_len)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)  # as lib.transformer.train_seq2seq
    optimizer.step()


class _CallOnly(torch.autograd.Function):
    """A kernel that computes nothing: its output is a copy of its last input, its gradient
    flows back unchanged. What remains is the cost of calling a kernel at all."""

    @staticmethod
    def forward(ctx, *inputs: torch.Tensor) -> torch.Tensor:
        ctx.count = len(inputs)
        return inputs[-1].clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return (grad,) * ctx.count


def lib_without_attention(src_vocab: int, tgt_vocab: int, cfg: TransformerConfig, device: torch.device,
                          call_only: bool) -> Transformer:
    """lib's model with attention and dropout removed (``call_only``: replaced by kernels that
    cost only their call, :class:`_CallOnly`), so each query gets its own position's value."""
    model = Transformer(src_vocab, tgt_vocab, cfg if call_only else replace(cfg, dropout=0.0)).to(device).train()
    for layer in model.modules():
        if isinstance(layer, MultiHeadAttention) and call_only:
            layer.attend = lambda q, k, v, valid_lens, causal: (_CallOnly.apply(q, k, v[:, :, :q.shape[2]]), None)
        elif isinstance(layer, MultiHeadAttention):
            layer.attend = lambda q, k, v, valid_lens, causal: (v[:, :, :q.shape[2]], None)
        elif isinstance(layer, Dropout) and call_only:
            layer.forward = lambda X: _CallOnly.apply(X)
    return model


def time_steps(steps: dict[str, Callable], batches, device: torch.device, num_steps: int,
               rounds: int = 5) -> dict[str, tuple[float, float]]:
    """Seconds per step, wall clock and CPU time, of each candidate: best of ``rounds``.

    The candidates take turns round by round, so a slow phase of a shared machine hits
    them all; the best round is the least disturbed one.
    """
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for step in steps.values():  # warm-up
        for batch in batches[:5]:
            step(batch)
    walls: dict[str, list[float]] = {name: [] for name in steps}
    cpus: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(num_steps):
                step(batches[i % len(batches)])
            sync()
            walls[name].append((time.perf_counter() - wall) / num_steps)
            cpus[name].append((time.process_time() - cpu) / num_steps)
    return {name: (min(walls[name]), min(cpus[name])) for name in steps}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round (5 rounds)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-steps", type=int, default=10, help="sequence length")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(lib model)")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode; reduce-overhead replays CUDA graphs on a GPU")
    parser.add_argument("--floor", action="store_true",
                        help="also time lib's step with attention and dropout removed, and with both "
                             "replaced by kernels that compute nothing (not models: the best ratio any "
                             "attention and dropout kernels could give)")
    parser.add_argument("--source", default="offline", choices=["auto", "download", "offline"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny ops: 1 is fastest)")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    seed_everything(0)
    data = load_translation(batch_size=args.batch_size, num_steps=args.num_steps, num_train=2000,
                            num_test=10, source=args.source)
    batches = [tuple(t.to(device) for t in b) for b in data.train if len(b[0]) == args.batch_size]
    cfg = TransformerConfig(num_hiddens=32, ffn_num_hiddens=64, num_heads=4, num_blks=2, dropout=0.1)
    src_v, tgt_v, bos, pad = len(data.src_vocab), len(data.tgt_vocab), data.tgt_vocab.bos, data.tgt_vocab.pad

    from d2l import torch as d2l

    theirs = d2l_transformer(src_v, tgt_v, cfg).to(device)
    theirs(*batches[0][:1], teacher_forcing(batches[0][2], bos), batches[0][1])  # shape the lazy layers
    theirs.train()
    their_opt = torch.optim.Adam(theirs.parameters(), lr=0.005)
    trainer = d2l.Trainer(max_epochs=1, gradient_clip_val=1)

    # lib's default drops out embeddings and sub-layer outputs (the paper); d2l also drops out
    # attention weights, one more random mask per attention call: time both.
    same = Transformer(src_v, tgt_v, replace(cfg, attention_dropout=cfg.dropout)).to(device).train()
    same_opt = torch.optim.Adam(same.parameters(), lr=0.005, fused=True)
    ours = Transformer(src_v, tgt_v, cfg).to(device).train()
    our_opt = torch.optim.Adam(ours.parameters(), lr=0.005, fused=True)

    steps = {
        "d2l": lambda b: d2l_step(theirs, their_opt, trainer, b, pad, bos),
        "lib, d2l dropout": lambda b: lib_step(same, same_opt, b, bos),
        "lib": lambda b: lib_step(ours, our_opt, b, bos),
    }
    if args.compile:
        compiled = torch.compile(ours, mode=args.compile_mode)
        # On a CPU, inductor's C++ wrapper calls the step's ~200 small kernels from C++ rather
        # than Python: about 10% of a compiled step here (23.5-29.8 against 27.5-31.9 ms, two
        # models of each, one run)
        wrapper = {"cpp_wrapper": device.type == "cpu"}
        start = time.perf_counter()
        with torch._inductor.config.patch(wrapper):  # read when the graphs compile, on the first step
            lib_step(compiled, our_opt, batches[0], bos)
        print(f"torch.compile{' (C++ wrapper)' if wrapper['cpp_wrapper'] else ''}: first step (compilation) "
              f"took {time.perf_counter() - start:.1f} s")
        steps["lib, compiled"] = lambda b: lib_step(compiled, our_opt, b, bos)
    if args.floor:
        for name, call_only in (("lib, call-only kernels", True), ("lib, no attention/dropout", False)):
            rest = lib_without_attention(src_v, tgt_v, cfg, device, call_only)
            rest_opt = torch.optim.Adam(rest.parameters(), lr=0.005, fused=True)
            steps[name] = lambda b, model=rest, opt=rest_opt: lib_step(model, opt, b, bos)
    results = time_steps(steps, batches, device, args.steps)

    tokens = args.batch_size * 2 * args.num_steps
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"config: {cfg.num_blks} blocks, {cfg.num_hiddens} hidden, {cfg.num_heads} heads, "
          f"batch {args.batch_size}, {args.num_steps} steps")
    print(f"{'model':<28}{'ms/step':>9}{'tokens/s':>11}{'vs d2l':>8}{'CPU ms/step':>13}{'vs d2l':>8}")
    base_wall, base_cpu = results["d2l"]
    for name, (wall, cpu) in results.items():
        print(f"{name:<28}{wall * 1e3:>9.2f}{tokens / wall:>11,.0f}{base_wall / wall:>7.2f}x"
              f"{cpu * 1e3:>13.2f}{base_cpu / cpu:>7.2f}x")
    print("ms/step and tokens/s: wall clock (best of 5 interleaved rounds); CPU ms/step: process CPU time.")
    return {name: tokens / wall for name, (wall, _) in results.items()}

if __name__ == "__main__":
    main()
