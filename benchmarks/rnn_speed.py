"""Training speed: lib.language_model's character language model against d2l's from-scratch RNN, one run.

d2l's configuration from its chapter *Recurrent Neural Network Implementation from
Scratch*: one tanh layer of 32 hidden units over one-hot characters (vocabulary 28),
minibatches of 1024 sequences of 32 steps, SGD with learning rate 1 and gradient
clipping at norm 1. All models train on the same batches of the same text (the offline
corpus by default, since d2l's own loader needs the internet).

* d2l: ``d2l.RNNLMScratch(d2l.RNNScratch(28, 32), 28)``. Its step follows ``d2l.Trainer``:
  ``model.loss``, ``Trainer.clip_gradients``, ``model.configure_optimizers()`` (SGD).
* lib: ``lib.language_model.CharLM`` with the same layer sizes, ``clip_gradients``, SGD. Two
  backends: ``torch`` (``torch.nn.RNN``'s fused kernel, the default) and ``scratch``
  (``lib.rnn.recurrent_forward``: a Python loop over steps, with the input projection of
  all steps in one matrix product).

Run: ``python -m benchmarks.rnn_speed [--device cuda] [--steps 5] [--rounds 5] [--threads 1]``.
Tokens per second count ``batch_size * num_steps`` per training step.

What to expect on a CPU (measured on the course's shared 2-core machines): lib is about
1.1-1.2x faster than d2l with one thread and 1.3-1.4x with two, at d2l's configuration.
With 32 hidden units, most of the time goes into work that all three models share: the
one-hot inputs, the output layer and the softmax over 32,768 positions. lib saves the
per-step output products, the bias additions (``addmm`` fuses them), the copies of
one-hot integers and of transposed logits. PyTorch has no fused RNN kernel for CPUs, so
``torch.nn.RNN`` runs the same per-step matrix products as the from-scratch loop.
With wide layers (``--hidden 256 --batch-size 64``) those products dominate, and all three
run at the same speed (within 10%). On a GPU, ``backend="torch"`` uses cuDNN's fused
kernels instead of one launch per operation and step; this script times that with
``--device cuda`` (not measured while writing it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lib.device import resolve_device, seed_everything
from lib.language_model import CharLM, CharLMConfig, clip_gradients, sequence_loss
from lib.text import load_text_data

Batch = tuple[torch.Tensor, torch.Tensor]


def d2l_model(vocab_size: int, hidden: int, device: torch.device):
    """d2l's from-scratch RNN language model and a d2l Trainer for its clipping."""
    from d2l import torch as d2l

    rnn = d2l.RNNScratch(num_inputs=vocab_size, num_hiddens=hidden)
    model = d2l.RNNLMScratch(rnn, vocab_size=vocab_size, lr=1).to(device)
    return model, model.configure_optimizers(), d2l.Trainer(max_epochs=1, gradient_clip_val=1)


def d2l_step(model, optimizer, trainer, batch: Batch) -> None:
    X, Y = batch
    loss = model.loss(model(X), Y)  # d2l.Classifier.loss: mean cross-entropy
    optimizer.zero_grad()
    with torch.no_grad():  # as in d2l.Trainer.fit_epoch
        loss.backward()
        trainer.clip_gradients(1, model)
        optimizer.step()


def lib_step(model: CharLM, optimizer: torch.optim.Optimizer, batch: Batch) -> None:
    X, Y = batch
    logits, _ = model(X)  # (B, T, V)
    loss = sequence_loss(logits, Y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clip_gradients(model.parameters(), 1.0)
    optimizer.step()


def time_steps(steps_by_name: dict[str, Callable[[Batch], None]], batches: list[Batch], device: torch.device,
               steps: int, rounds: int) -> dict[str, float]:
    """Seconds per training step of each model: the median over ``rounds`` rounds of ``steps``.

    The models take turns round by round, so a change in the machine's load (a shared CPU)
    hits them all alike.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for step in steps_by_name.values():  # warm-up
        for batch in batches[:3]:
            step(batch)
    times: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for _ in range(rounds):
        for name, step in steps_by_name.items():
            sync()
            start = time.perf_counter()
            for i in range(steps):
                step(batches[i % len(batches)])
            sync()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each model takes one turn per round")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--num-steps", type=int, default=32, help="sequence length")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--source", default="offline", choices=["auto", "download", "offline"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is robust on shared cores)")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    seed_everything(0)
    data = load_text_data(source=args.source)
    V = len(data.vocab)
    batches = [
        (X.to(device), Y.to(device))
        for X, Y in data.batches("train", args.batch_size, args.num_steps, "random", torch.Generator().manual_seed(0))
    ][:8]

    theirs, their_opt, trainer = d2l_model(V, args.hidden, device)
    steps_by_name: dict[str, Callable[[Batch], None]] = {
        "d2l RNNScratch": lambda b: d2l_step(theirs, their_opt, trainer, b)
    }
    for backend in ("torch", "scratch"):
        torch.manual_seed(0)
        ours = CharLM(CharLMConfig(V, args.hidden, num_layers=1, mode="rnn_tanh", backend=backend)).to(device)
        our_opt = torch.optim.SGD(ours.parameters(), lr=1)
        steps_by_name[f"lib CharLM ({backend})"] = lambda b, m=ours, o=our_opt: lib_step(m, o, b)
    results = time_steps(steps_by_name, batches, device, args.steps, args.rounds)

    tokens = args.batch_size * args.num_steps
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; corpus {data.name}; "
          f"config: 1 tanh layer, {args.hidden} hidden, vocabulary {V}, batch {args.batch_size}, "
          f"{args.num_steps} steps, SGD lr 1, clipping at 1")
    print(f"{'model':<24}{'ms/step':>10}{'tokens/s':>13}{'vs d2l':>9}")
    base = results["d2l RNNScratch"]
    for name, seconds in results.items():
        print(f"{name:<24}{seconds * 1e3:>10.1f}{tokens / seconds:>13,.0f}{base / seconds:>8.2f}x")
    return {name: tokens / seconds for name, seconds in results.items()}


if __name__ == "__main__":
    main()
