"""Every read of every `fixes.*` switch and data policy in src/ has a test that fails when that
one read is ignored. READERS is the table (switch -> reader -> test); a new read without a row,
or a row whose read has gone, fails here. The slow test ignores each read in a copy of src/
(the read becomes the original's value) and expects its test, in the fast suite, to fail."""
from __future__ import annotations

import re
from collections import defaultdict

import pytest

from tests.mutants import imported_from, killed, mutated_copy
from tests.switch_reads import REPO, find_reads, ignored_source

FIX = "tests/test_fix_reads.py::"
TRIM = "tests/test_trim.py::test_trimmed_where_masked_and_no_dropout_is_drawn"
MODELS = "tests/test_models.py::"
SILENT = "tests/test_silent_audio.py::"

# switch -> {reader (module:function) -> the fast test that fails when that read is ignored}
READERS = {
    "fixes.eval_attention_dropout_off": {
        "koemo.modeling.models:_stack":
            MODELS + "test_eval_outputs_are_deterministic_only_with_attention_dropout_fix",
        "koemo.inference.predictor:Predictor.__init__":
            FIX + "test_predictor_notes_a_random_draw_only_without_the_dropout_fix",
        "koemo.inference.hub:model_card":
            FIX + "test_model_card_says_inference_is_deterministic_with_the_dropout_fix",
        "koemo.modeling.trim:_dropout_free": TRIM,
        "koemo.modeling.evaluate:evaluate":
            "tests/test_evaluate.py::test_an_eval_switch_is_honoured_and_reported",
        "koemo.modeling.evaluate:unseeded_run_note":
            "tests/test_evaluate.py::test_a_run_scored_before_seeding_is_named",
    },
    "fixes.text_padding_mask": {
        "koemo.modeling.models:TextRegressor.forward":
            MODELS + "test_text_padding_content_reaches_valid_tokens_only_without_the_mask_fix",
        "koemo.modeling.trim:_masks_padding": TRIM,
    },
    "fixes.length_padding_mask": {
        "koemo.modeling.models:AudioRegressor.masks":
            MODELS + "test_audio_padding_content_reaches_valid_frames_only_without_the_length_fix",
        "koemo.modeling.trim:_masks_padding": TRIM,
    },
    "fixes.last_valid_step": {
        "koemo.modeling.models:AudioRegressor.forward":
            MODELS + "test_predictions_ignore_trailing_padding_only_with_last_valid_step",
        "koemo.modeling.models:TextRegressor.forward":
            MODELS + "test_predictions_ignore_trailing_padding_only_with_last_valid_step",
        "koemo.modeling.models:AttentionLSTMHead.classify":
            FIX + "test_classifier_lstm_ignores_trailing_padding_only_with_last_valid_step",
        "koemo.modeling.trim:_masks_padding": TRIM,
    },
    "fixes.consistent_heads": {
        "koemo.modeling.models:audio_heads_for_classifier":
            MODELS + "test_consistent_heads_refuses_a_head_count_change",
        "koemo.modeling.models:reuse_audio_model":
            MODELS + "test_consistent_heads_refuses_a_head_count_change",
        "koemo.modeling.convert:heads_resolution":
            "tests/test_convert.py::test_consistent_heads_config_keeps_six_of_six_and_says_so",
    },
    "fixes.db_floor_padding": {
        "koemo.modeling.data:AudioFeatures.__call__":
            "tests/test_resident.py::test_regressor_batches_equal_the_dataloader_path",
        "koemo.modeling.resident:ResidentAudio.__init__":
            "tests/test_resident.py::test_regressor_batches_equal_the_dataloader_path",
        "koemo.inference.predictor:Predictor._as_trained":
            FIX + "test_predictor_pads_like_training_reads_the_store",
    },
    "fixes.mask_spectrogram_only": {
        "koemo.modeling.data:AudioFeatures.__call__":
            "tests/test_resident.py::test_regressor_batches_equal_the_dataloader_path",
        "koemo.modeling.resident:ResidentAudio._draw_masks":
            "tests/test_resident.py::test_regressor_batches_equal_the_dataloader_path",
        "koemo.reporting.plots:augmentation_examples":
            FIX + "test_augmentation_figure_masks_as_training_does",
    },
    "fixes.seed_per_sample": {
        "koemo.dataset.augment:plan_augmentation":
            "tests/test_augment.py::test_seed_per_sample_switch_reads_false_as_the_original",
    },
    "fixes.test_best_checkpoint": {
        "koemo.modeling.scoring:score_test_split":
            "tests/test_train.py::test_early_stopping_and_best_checkpoint_scoring",
        "koemo.modeling.evaluate:resolve_checkpoint":
            FIX + "test_evaluate_scores_the_checkpoint_the_test_rule_names",
    },
    "data.silent_audio": {
        "koemo.modeling.data:split_rows":
            SILENT + "test_drop_policy_removes_only_those_rows_and_moves_no_other",
    },
    "data.label_policy": {
        "koemo.config.load:validate": "tests/test_config_values.py::test_cross_field_rules_name_the_key",
        "koemo.dataset.prepare:scan_corpus": "tests/test_prepare.py::test_seven_label_policy",
        "koemo.dataset.prepare:make_report":
            FIX + "test_prepare_report_names_the_label_policy_it_applied",
        "koemo.dataset.labels:data_classes": FIX + "test_the_seven_label_policy_gives_seven_logits",
        "koemo.modeling.checkpoint:config_differences":
            FIX + "test_checkpoints_record_and_check_their_own_label_policy",
        "koemo.inference.hub:config_lines": FIX + "test_model_card_names_the_label_policy",
        "koemo.biosignals.analysis:analyse":
            "tests/test_biosignals.py::test_utterances_are_labelled_by_the_data_sections_policy",
    },
}


def found_readers() -> dict[str, set[str]]:
    found = defaultdict(set)
    for read in find_reads():
        found[read.switch].add(read.reader)
    return found


def test_every_switch_and_policy_has_readers_in_the_table():
    from tests.switch_reads import FIX_NAMES, POLICY_DEFAULTS
    assert set(READERS) == {f"fixes.{n}" for n in FIX_NAMES} | {f"data.{n}" for n in POLICY_DEFAULTS}


def test_every_read_in_src_is_in_the_table_and_every_row_still_reads():
    found = found_readers()
    missing = sorted(f"{s} read by {r}" for s, readers in found.items() for r in readers
                     if r not in READERS.get(s, {}))
    gone = sorted(f"{s} no longer read by {r}" for s, readers in READERS.items() for r in readers
                  if r not in found.get(s, set()))
    assert not missing, "add a row and a test to READERS: " + "; ".join(missing)
    assert not gone, "remove these rows from READERS: " + "; ".join(gone)


def test_the_finder_sees_dict_get_and_attribute_style_reads(tmp_path):
    """The typed config (pydantic) reads `cfg.fixes.x`: such reads are found too."""
    package = tmp_path / "koemo"
    package.mkdir()
    (package / "m.py").write_text(
        "def a(cfg):\n    return cfg.fixes.last_valid_step\n"
        "def b(cfg):\n    fixes = cfg['fixes']\n    return fixes.get('db_floor_padding', False)\n"
        "def c(self):\n    return self.fixes['consistent_heads'] or self.cfg.data.silent_audio\n"
        "def d(out):\n    out['data']['silent_audio'] = 'drop'\n")       # a write, not a read
    reads = {(r.switch, r.reader) for r in find_reads(tmp_path)}
    assert reads == {("fixes.last_valid_step", "koemo.m:a"), ("fixes.db_floor_padding", "koemo.m:b"),
                     ("fixes.consistent_heads", "koemo.m:c"), ("data.silent_audio", "koemo.m:c")}


def test_every_listed_test_exists_and_is_fast():
    for readers in READERS.values():
        for node in readers.values():
            path, name = node.split("::")
            source = (REPO / path).read_text(encoding="utf-8")
            match = re.search(rf"((?:^@.*\n)*)^def {name}\(", source, re.MULTILINE)
            assert match, f"{node}: no such test"
            assert "mark.slow" not in match.group(1), f"{node} is slow: make test-fast would miss it"


def each_read():
    return [pytest.param(read, id=f"{read.switch}@{read.reader}:{read.span[0]}") for read in find_reads()]


@pytest.mark.slow
@pytest.mark.mutation
@pytest.mark.parametrize("read", each_read())
def test_ignoring_the_read_fails_its_test(read, tmp_path):
    src = mutated_copy(tmp_path, {read.path: ignored_source(read)})
    assert imported_from(src).startswith(str(src))
    node = READERS[read.switch][read.reader]
    dead, summary = killed(src, [node])
    assert dead, f"{read.reader} ignoring {read.switch} (line {read.span[0]}) passes {node}: {summary}"
