"""Wrist bio-signals of KEMDy20 (EDA, TEMP, IBI) per utterance, and the original's step 1-3 redone.

Layers point one way: io (files, labels, coverage) and clustering / levels (the two checks)
know nothing of each other; analysis combines them into a BiosignalReport; report writes it.
The names below are the public API (`from koemo import biosignals`).
"""
from koemo.biosignals.analysis import (MIN_SAMPLES, BiosignalReport, SignalResult, analyse,
                                       analyse_signal, conclude_clusters, conclude_level,
                                       labelled_series)
from koemo.biosignals.clustering import (N_INIT, N_PERMUTATIONS, cluster_association,
                                         dtw_kmeans_sweep, normalised_series, stratified_sample)
from koemo.biosignals.io import (COVERAGE_COLUMNS, DATA_FIELDS, FILE_STATUSES, SERIES_COLUMNS,
                                 SIGNALS, SignalFile, coverage_summary, load_biosignals,
                                 read_labels, read_signal_file)
from koemo.biosignals.levels import level_tests, within_speaker_z
from koemo.biosignals.report import (BiosignalOutcome, analyse_and_write, plot_centroids,
                                     plot_silhouette, summary_table, write_report)
from koemo.errors import BiosignalsNotAvailable

__all__ = [
    "MIN_SAMPLES", "BiosignalReport",
    "SignalResult", "analyse", "analyse_signal", "conclude_clusters", "conclude_level",
    "labelled_series", "N_INIT", "N_PERMUTATIONS", "cluster_association", "dtw_kmeans_sweep",
    "normalised_series", "stratified_sample", "COVERAGE_COLUMNS", "DATA_FIELDS", "FILE_STATUSES",
    "SERIES_COLUMNS", "SIGNALS", "SignalFile", "coverage_summary", "load_biosignals",
    "read_labels", "read_signal_file", "level_tests", "within_speaker_z", "plot_centroids",
    "plot_silhouette", "summary_table", "write_report", "BiosignalOutcome", "analyse_and_write",
    "BiosignalsNotAvailable",
]
