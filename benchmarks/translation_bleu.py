"""Translation quality: BLEU on the held-out split, lib.transformer beside d2l's model.

Both models (same sizes: 2 blocks, 32 hidden, 4 heads, dropout 0.1) train for the same
epochs on the same batches of the offline English-to-French number corpus, then translate
the fixed held-out test split greedily. Reported: mean sentence BLEU (k=2, as in d2l), the
fraction of exact translations, and training time. d2l's model (built from d2l's blocks as
in ``benchmarks/transformer_speed.py``) is decoded twice: the way d2l's ``predict_step``
does it (one token at a time, so its decoder adds the positional encoding of position 0 to
every new token), and by recomputing the whole prefix at every step (correct positions).

Run: ``python -m benchmarks.translation_bleu [--epochs 20] [--num-train 5000] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from benchmarks.transformer_speed import d2l_step, d2l_transformer
from lib.device import resolve_device, seed_everything
from lib.transformer import Transformer, TransformerConfig, evaluate_bleu, teacher_forcing, translate
from lib.translation import TranslationData, bleu, encode, load_translation, tokenize


def train_lib(data: TranslationData, cfg: TransformerConfig, epochs: int, device: torch.device) -> Transformer:
    from lib.transformer import train_seq2seq

    model = Transformer(len(data.src_vocab), len(data.tgt_vocab), cfg)
    train_seq2seq(model, data.train, data.tgt_vocab.bos, num_epochs=epochs, lr=0.005, device=device)
    return model.eval()


def train_d2l(data: TranslationData, cfg: TransformerConfig, epochs: int, device: torch.device) -> nn.Module:
    from d2l import torch as d2l

    model = d2l_transformer(len(data.src_vocab), len(data.tgt_vocab), cfg).to(device)
    src, src_len, tgt, _ = (t.to(device) for t in next(iter(data.train)))
    model(src, teacher_forcing(tgt, data.tgt_vocab.bos), src_len)  # shape the lazy layers
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    trainer = d2l.Trainer(max_epochs=epochs, gradient_clip_val=1)
    for _ in range(epochs):
        for batch in data.train:
            d2l_step(model, optimizer, trainer, [t.to(device) for t in batch], data.tgt_vocab.pad, data.tgt_vocab.bos)
    return model


@torch.no_grad()
def d2l_translate(model: nn.Module, data: TranslationData, sentences: list[str], device: torch.device,
                  recompute: bool) -> list[str]:
    """Greedy decoding of d2l's model: d2l's way, or recomputing the prefix with causal masks."""
    src, src_len = (t.to(device) for t in encode([tokenize(s) for s in sentences], data.src_vocab, data.num_steps))
    vocab = data.tgt_vocab
    if recompute:
        for m in model.modules():  # d2l masks the future only in training mode: keep it, drop dropout
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        model.train()
    else:
        model.eval()
    enc = model.encoder(src, src_len)
    out = torch.full((len(sentences), 1), vocab.bos, dtype=torch.long, device=device)
    state = [enc, src_len, [None] * len(model.decoder.blks)]
    for _ in range(data.num_steps):
        if recompute:
            logits, _ = model.decoder(out, [enc, src_len, [None] * len(model.decoder.blks)])
        else:
            logits, state = model.decoder(out[:, -1:], state)  # d2l's predict_step
        out = torch.cat([out, logits[:, -1:].argmax(-1)], dim=1)
    results = []
    for row in out[:, 1:].tolist():
        row = row[: row.index(vocab.eos)] if vocab.eos in row else row
        results.append(" ".join(vocab.to_tokens(row)))
    return results


def scores(preds: list[str], pairs: list[tuple[str, str]]) -> tuple[float, float]:
    labels = [" ".join(tokenize(f)) for _, f in pairs]
    mean_bleu = sum(bleu(p, label, 2) for p, label in zip(preds, labels, strict=True)) / len(labels)
    exact = sum(p == label for p, label in zip(preds, labels, strict=True)) / len(labels)
    return mean_bleu, exact


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--num-train", type=int, default=5000)
    parser.add_argument("--num-test", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny ops: 1 is fastest)")
    parser.add_argument("--skip-d2l", action="store_true", help="train only lib's model")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    data = load_translation(batch_size=64, num_steps=12, num_train=args.num_train, num_test=args.num_test,
                            source="offline")
    cfg = TransformerConfig(num_hiddens=32, ffn_num_hiddens=64, num_heads=4, num_blks=2, dropout=0.1)
    english = [e for e, _ in data.test_pairs]
    rows = {}

    seed_everything(0)
    start = time.perf_counter()
    ours = train_lib(data, cfg, args.epochs, device)
    seconds = time.perf_counter() - start
    rows["lib (KV cache)"] = (*scores(translate(ours, english, data, device), data.test_pairs), seconds)
    assert abs(rows["lib (KV cache)"][0] - evaluate_bleu(ours, data.test_pairs, data, device)) < 1e-9

    if not args.skip_d2l:
        seed_everything(0)
        start = time.perf_counter()
        theirs = train_d2l(data, cfg, args.epochs, device)
        seconds = time.perf_counter() - start
        rows["d2l, d2l's decoding"] = (*scores(d2l_translate(theirs, data, english, device, False), data.test_pairs),
                                       seconds)
        rows["d2l, recomputed"] = (*scores(d2l_translate(theirs, data, english, device, True), data.test_pairs),
                                   seconds)

    print(f"offline number corpus: {len(data.train_pairs)} training pairs, {len(data.test_pairs)} held-out "
          f"test pairs; epochs: {args.epochs}; device: {device}")
    print(f"{'model':<24}{'BLEU':>8}{'exact':>8}{'train s':>9}")
    for name, (b, exact, s) in rows.items():
        print(f"{name:<24}{b:>8.3f}{exact:>8.3f}{s:>9.1f}")
    return {name: row[0] for name, row in rows.items()}


if __name__ == "__main__":
    main()
