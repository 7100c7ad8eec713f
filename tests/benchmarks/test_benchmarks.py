"""The speed and quality benchmarks run end to end (tiny settings) and print their tables.

Their numbers are not checked here (timings belong to benchmark runs, not tests); what is
checked is that each benchmark still builds both models, trains them on the same data and
reports every row, so a change to ``lib`` or d2l cannot silently break a benchmark.
"""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import grading_speed, rnn_speed, transformer_speed, translation_bleu

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_transformer_speed_times_every_model(capsys):
    rates = transformer_speed.main(["--steps", "1", "--floor", "--batch-size", "16"])
    assert list(rates) == ["d2l", "lib, d2l dropout", "lib", "lib, call-only kernels", "lib, no attention/dropout"]
    assert all(math.isfinite(r) and r > 0 for r in rates.values())
    table = capsys.readouterr().out
    for name in rates:
        assert f"\n{name} " in table
    assert "vs d2l" in table and "batch 16, 10 steps" in table


def test_rnn_speed_times_every_model(capsys):
    rates = rnn_speed.main(["--steps", "1", "--rounds", "1", "--batch-size", "32", "--num-steps", "8"])
    assert list(rates) == ["d2l RNNScratch", "lib CharLM (torch)", "lib CharLM (scratch)"]
    assert all(math.isfinite(r) and r > 0 for r in rates.values())
    table = capsys.readouterr().out
    assert all(f"\n{name} " in table for name in rates) and "1.00x" in table


def test_translation_bleu_scores_both_models(capsys):
    bleus = translation_bleu.main(["--epochs", "1", "--num-train", "256", "--num-test", "16"])
    assert list(bleus) == ["lib (KV cache)", "d2l, d2l's decoding", "d2l, recomputed"]
    assert all(0.0 <= b <= 1.0 for b in bleus.values())
    table = capsys.readouterr().out
    assert "256 training pairs, 16 held-out test pairs; epochs: 1" in table


def test_grading_speed_times_every_tool_on_equal_grades(capsys):
    seconds = grading_speed.main(["--n", "1", "--workers", "1"])
    assert list(seconds) == ["papermill", "nbgrader", "autograder, 1 workers"]
    assert all(s > 0 for s in seconds.values())
    out = capsys.readouterr().out
    assert "1 submissions of 'softmax'" in out and "every tool gave every submission" in out
