"""fitplan against published GPU measurements (benchmarks/data/measured-calibration.csv: ms-swift
benchmark tables, one A100-80G, torch.cuda.max_memory_reserved). The thresholds are the issue's
done-when targets; the ones not reached yet are marked xfail with the rows that miss them
(docs/accuracy.md explains each)."""

import pytest

from fitplan.solver.calibration import published_runs as calibration

PREDICTIONS, SKIPPED = calibration.predict_all(calibration.CSV_PATH)
SUMMARY = calibration.summarise(PREDICTIONS)
BY_INDEX = {p.row.index: p for p in PREDICTIONS}


def test_every_row_is_predicted_or_skipped_with_a_reason():
    assert len(PREDICTIONS) + len(SKIPPED) == 61
    assert all(r.skip_reason for r in SKIPPED)
    assert len(PREDICTIONS) == 38


def test_median_memory_error_is_at_most_5_percent():
    assert SUMMARY.median_abs_error <= 0.05


def test_7b_lora_sequence_sweep_within_5_percent_below_and_10_above():
    # rows 5-9: Qwen-7B-Chat LoRA, max_length 512..8192 (the sweep the variable-length reserve was fitted on)
    for index in range(5, 10):
        assert -0.05 <= BY_INDEX[index].memory_error <= 0.10, index


def test_full_fine_tuning_7b_peaks_in_the_foreach_adamw_step():
    # rows 15-17: 73.4-74.3 GiB measured, flat in seq_len: bf16 params+grads+states + the foreach sqrt temporary
    for index in (15, 16, 17):
        assert BY_INDEX[index].moment == "optimizer"
        assert abs(BY_INDEX[index].memory_error) <= 0.02


@pytest.mark.xfail(reason="rows 12 (1.8B full s2048, -23%: one draw of a figure the allocator replay "
                          "puts at 24-42 GiB by data order) and 22 (bnb nf4, -20%, cause open: needs a GPU) "
                          "are under-predicted; see docs/accuracy.md", strict=True)
def test_no_row_is_under_predicted_by_more_than_5_percent():
    assert SUMMARY.worst_under >= -0.05


@pytest.mark.xfail(reason="1.8B full-FT sweep is non-monotone in the published data (row 12) and row 24 "
                          "(b4) is +22%, inside the allocator replay's 64-79 GiB range; docs/accuracy.md",
                   strict=True)
def test_no_row_is_off_by_more_than_15_percent():
    assert SUMMARY.max_abs_error <= 0.15


def test_predicted_throughput_is_within_0_7_to_1_4_of_measured_for_every_row():
    assert 0.7 <= SUMMARY.speed_ratio_min and SUMMARY.speed_ratio_max <= 1.4


@pytest.mark.parametrize("sweep", ["seq_len Qwen-1.8B-Chat lora", "seq_len Qwen-7B-Chat lora",
                                   "seq_len Qwen-1.8B-Chat full", "seq_len Qwen-7B-Chat full",
                                   "quantization", "batch", "flash_ckpt"])
def test_speed_ranks_each_sweep(sweep):
    assert SUMMARY.spearman_by_sweep[sweep] >= 0.9 - 1e-9  # 5 points: one swap = 0.9 exactly


def test_16bit_lora_is_faster_than_qlora_and_no_checkpointing_faster_than_checkpointing():
    assert BY_INDEX[7].samples_per_s > BY_INDEX[22].samples_per_s > 0
    assert BY_INDEX[26].samples_per_s > BY_INDEX[7].samples_per_s
