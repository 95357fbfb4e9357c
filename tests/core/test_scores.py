"""Calibration and the paired difference, checked against cases worked by hand,
and the sentence that says whether fine-tuning beat the prompt."""

from __future__ import annotations

import math

import pytest

from ftstudio.core.prompting import Shot, choose_shots, with_shots
from ftstudio.core.scores import (
    PairedCounts,
    calibration,
    compare_prompt_and_adapter,
    finding_sentence,
    paired_counts,
    paired_difference_interval,
)


def test_calibration_of_a_case_worked_by_hand():
    conf = [0.95, 0.92, 0.85, 0.90, 0.55, 0.58, 0.35]
    right = [True, True, False, True, True, False, False]
    cal = calibration(conf, right)
    # Bins (0.9, 1]: 0.95, 0.92 -> mean 0.935, both right      -> |1.0 - 0.935| = 0.065, 2 of 7
    #      (0.8, 0.9]: 0.85, 0.90 (an edge goes down) -> 0.875, 1 of 2 right -> 0.375, 2 of 7
    #      (0.5, 0.6]: 0.55, 0.58 -> 0.565, 1 of 2 right       -> 0.065, 2 of 7
    #      (0.3, 0.4]: 0.35, wrong                             -> 0.35,  1 of 7
    # ECE = (2 * 0.065 + 2 * 0.375 + 2 * 0.065 + 0.35) / 7 = 1.36 / 7
    assert cal.ece == pytest.approx(1.36 / 7)
    assert cal.accuracy == pytest.approx(4 / 7)
    filled = {round(b.low, 1): b for b in cal.bins if b.count}
    assert sorted(filled) == [0.3, 0.5, 0.8, 0.9]
    assert filled[0.9].confidence == pytest.approx(0.935) and filled[0.9].accuracy == 1.0
    assert filled[0.8].count == 2 and filled[0.8].accuracy == 0.5
    assert filled[0.3].accuracy == 0.0
    assert len(cal.bins) == 10 and sum(b.count for b in cal.bins) == 7


def test_calibration_edges_and_perfect_calibration():
    # 0.3 * 10 is 3.0000000000000004 in floating point: it still belongs to (0.2, 0.3].
    cal = calibration([0.3, 1.0, 0.0], [False, True, False])
    assert [b.count for b in cal.bins] == [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    # Confidence 0.8 and 8 of 10 right: no calibration error.
    assert calibration([0.8] * 10, [True] * 8 + [False] * 2).ece == pytest.approx(0.0)
    assert calibration([], []).ece is None
    with pytest.raises(ValueError):
        calibration([0.5], [])


def test_paired_counts_use_only_the_common_examples():
    a = {1: True, 2: True, 3: False, 4: False, 5: True}
    b = {1: True, 2: False, 3: True, 4: False, 9: True}
    assert paired_counts(a, b) == PairedCounts(both=1, only_a=1, only_b=1, neither=1)


def test_paired_interval_worked_by_hand():
    # 40 examples: both right 20, only A 9, only B 3, neither 8.
    # A: 29/40 = 0.725, Wilson (0.57165, 0.83892); B: 23/40 = 0.575, Wilson (0.42195, 0.71491)
    # phi = (20*8 - 9*3) / sqrt(29 * 11 * 23 * 17) = 133 / 353.17 = 0.37659
    # delta   = sqrt(0.15335^2 - 2*0.37659*0.15335*0.13991 + 0.13991^2) = 0.16411
    # epsilon = sqrt(0.11392^2 - 2*0.37659*0.11392*0.15305 + 0.15305^2) = 0.15254
    counts = PairedCounts(20, 9, 3, 8)
    assert counts.difference == pytest.approx(0.15)
    low, high = paired_difference_interval(counts)
    assert low == pytest.approx(0.15 - 0.16411, abs=1e-4)
    assert high == pytest.approx(0.15 + 0.15254, abs=1e-4)


def test_paired_interval_agrees_with_the_normal_approximation_on_many_examples():
    c = PairedCounts(4000, 1500, 500, 1000)
    n, d = c.n, c.difference
    half = 1.959963984540054 * math.sqrt(((c.only_a + c.only_b) / n - d * d) / n)
    low, high = paired_difference_interval(c)
    assert low == pytest.approx(d - half, abs=2e-3) and high == pytest.approx(d + half, abs=2e-3)
    # the pairing matters: the unpaired interval of the same shares is wider here
    assert high - low < 2 * 1.96 * math.sqrt(0.786 * 0.214 / n + 0.643 * 0.357 / n)
    # no difference: the interval straddles 0; no data: anything goes
    low, high = paired_difference_interval(PairedCounts(10, 4, 4, 2))
    assert low < 0 < high
    assert paired_difference_interval(PairedCounts(0, 0, 0, 0)) == (-1.0, 1.0)


def test_the_sentence_counts_the_best_adapter_against_the_best_prompt():
    ids = range(40)  # the pattern of 20 examples, twice
    outcomes = {
        "zero": {i: i % 20 < 8 for i in ids},  # 40%
        "few": {i: i % 20 < 12 for i in ids},  # 60%: the best prompt
        "run:a": {i: i % 20 < 15 for i in ids},  # 75%
        "run:b": {i: i % 20 not in (3, 11) for i in ids},  # 90%: the best adapter
    }
    finding = compare_prompt_and_adapter(outcomes, {"run:a": True, "run:b": True})
    assert finding.adapter == "run:b" and finding.prompt == "few"
    # by hand, per 20: both right 10 (0-11 but 3, 11), only the adapter 8 (12-19), only the prompt 2 (3, 11)
    assert finding.counts == PairedCounts(20, 16, 4, 0)
    low, high = finding.interval
    sentence = finding_sentence(finding)
    assert sentence.startswith(
        "The best adapter answers 90% correctly, the best prompt 60%: fine-tuning adds "
        "30 points (95% interval "
    )
    assert f"{low * 100:.0f}–{high * 100:.0f})." in sentence and 0 < low < 0.3 < high
    assert "not a clear difference" not in sentence
    assert "worth it" in finding_sentence(compare_prompt_and_adapter({"few": outcomes["few"]}, {}))
    worse = compare_prompt_and_adapter({"few": outcomes["run:b"], "run:x": outcomes["zero"]}, {"run:x": True})
    assert "loses 50 points" in finding_sentence(worse)


def test_shots_are_seeded_balanced_and_put_before_the_question():
    labels = ["billing"] * 10 + ["shipping"] * 3 + ["account"] * 2
    train = [
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": f"ticket {i}"},
            {"role": "assistant", "content": label},
        ]
        for i, label in enumerate(labels)
    ]
    train.append(
        [
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "turns"},
            {"role": "assistant", "content": "b"},
        ]
    )
    shots = choose_shots(train, 5, seed=1, example_ids=list(range(100, 116)))
    assert len(shots) == 5
    answers = [s.answer for s in shots]
    # each label once before any repeats
    assert sorted(answers[:3]) == ["account", "billing", "shipping"]
    assert all(s.example_id in range(100, 115) for s in shots)  # never the two-turn example
    assert choose_shots(train, 5, seed=1, example_ids=list(range(100, 116))) == shots
    assert choose_shots(train, 5, seed=2, example_ids=list(range(100, 116))) != shots
    assert len(choose_shots(train, 50)) == 15 and choose_shots(train, 0) == []

    conv = [{"role": "system", "content": "Triage."}, {"role": "user", "content": "Where is it?"}]
    prompt = with_shots(conv, [Shot(1, "Refund?", "billing")])
    assert prompt == [
        conv[0],
        {"role": "user", "content": "Refund?"},
        {"role": "assistant", "content": "billing"},
        conv[1],
    ]
    assert with_shots(conv[1:], [Shot(1, "Refund?", "billing")])[0]["content"] == "Refund?"
