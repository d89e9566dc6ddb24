"""Planted bugs (issues #22 and #30): each applied to a copy of src/ must be caught by the fast
suite (`make test-fast`). Before their tests, each of these survived it (or was caught only by a
slow test)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.mutants import REPO, imported_from, killed, mutated_copy


@dataclass(frozen=True)
class PlantedBug:
    file: str
    old: str
    new: str
    tests: tuple        # fast tests, any of which failing kills the bug


FIX = "tests/test_fix_reads.py::"
DROPS = "tests/test_prepare_reported_drops.py"
UNC = "tests/test_uncertainty.py::"
BUGS = {
    "predictor ignores db_floor_padding": PlantedBug(
        "src/koemo/inference/predictor.py",
        'if self.cfg.fixes.db_floor_padding:', "if False:",
        (FIX + "test_predictor_pads_like_training_reads_the_store",)),
    "classifier LSTM ignores last_valid_step": PlantedBug(
        "src/koemo/modeling/models.py",
        'self.fc(pick_step(outputs, mask, self.fixes.last_valid_step))',
        "self.fc(pick_step(outputs, mask, False))",
        (FIX + "test_classifier_lstm_ignores_trailing_padding_only_with_last_valid_step",)),
    "evaluate ignores test_best_checkpoint": PlantedBug(
        "src/koemo/modeling/evaluate.py",
        "checkpoint = run.best if cfg.fixes.test_best_checkpoint else run.last",
        "checkpoint = run.last",
        (FIX + "test_evaluate_scores_the_checkpoint_the_test_rule_names",)),
    "prepare drops a duplicate Segment ID unreported": PlantedBug(
        "src/koemo/dataset/duplicates.py",
        '''                out.drop_row(sid, session, path, "duplicate_segment_id",
                             f"{head}; a copy of the first, which is used")
''', "                pass\n", (DROPS,)),
    "prepare drops a bad-value row unreported": PlantedBug(
        "src/koemo/dataset/prepare.py",
        '''        out.drop_row(sid, session, csv_path, "bad_value",
                     f"{where}: {', '.join(missing)} missing, not a number or infinite")
''', "", (DROPS,)),
    "rows_dropped counts problem files too": PlantedBug(
        "src/koemo/dataset/prepare.py",
        '"rows_dropped": len(out.dropped),', '"rows_dropped": len(out.dropped) + len(out.files),',
        (DROPS + "::test_report_balances_on_the_damaged_corpus",)),
    "the run lock is never taken": PlantedBug(
        "src/koemo/experiments/runlock.py",
        "with hold_run(run_dir, blocking=blocking) if is_main else contextlib.nullcontext(True) as held:",
        "with contextlib.nullcontext(True) as held:",
        ("tests/test_runlock.py",)),
    # issue #30, item 7: the science's own arithmetic
    "the bootstrap interval is a 99% one": PlantedBug(
        "src/koemo/reporting/uncertainty.py",
        "tail = 100 * (1 - CONFIDENCE) / 2", "tail = 100 * (1 - 0.99) / 2",
        (UNC + "test_the_interval_is_the_2_5_and_97_5_percentiles_of_the_draws",)),
    "the paired test counts one tail": PlantedBug(
        "src/koemo/reporting/uncertainty.py",
        "extreme = np.abs(draws - point) >= abs(point) - 1e-12",
        "extreme = (draws - point) >= abs(point) - 1e-12",
        (UNC + "test_the_paired_test_is_two_sided_a_versus_b_as_b_versus_a",)),
    "valence and arousal alpha are nominal": PlantedBug(
        "src/koemo/reporting/agreement.py",
        'row[f"{field} alpha (interval)"] = krippendorff_alpha(scores, "interval")',
        'row[f"{field} alpha (interval)"] = krippendorff_alpha(scores, "nominal")',
        ("tests/test_agreement.py::test_valence_and_arousal_agreement_is_the_interval_alpha",)),
    "the text-state key leaves out max_length (the padding)": PlantedBug(
        "src/koemo/text/encoder.py",
        "return hashlib.sha1(row.tobytes()).hexdigest()",
        "return hashlib.sha1(row[row != 1].tobytes()).hexdigest()",
        ("tests/test_text_encoder.py::"
         "test_a_new_max_length_misses_the_cache_and_gets_states_of_its_own_shape",)),
}


def planted(bug: PlantedBug) -> str:
    text = (REPO / bug.file).read_text(encoding="utf-8")
    assert text.count(bug.old) == 1, f"{bug.file}: the code to plant into has changed: {bug.old!r}"
    return text.replace(bug.old, bug.new)


def test_every_bug_still_applies_to_the_source():
    for bug in BUGS.values():
        planted(bug)


@pytest.mark.slow
@pytest.mark.mutation
@pytest.mark.parametrize("name", sorted(BUGS))
def test_the_fast_suite_catches_the_planted_bug(name, tmp_path):
    bug = BUGS[name]
    src = mutated_copy(tmp_path, {REPO / bug.file: planted(bug)})
    assert imported_from(src).startswith(str(src))
    dead, summary = killed(src, list(bug.tests))
    assert dead, f"planted bug survived the fast tests {', '.join(bug.tests)}: {name} ({summary})"
