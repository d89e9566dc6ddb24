"""Where a corpus' annotation rows and files are, for `koemo prepare` (KEMDy20 or KEMDy19).

`open_corpus` picks the corpus (data.corpus, or recognised from its files) and returns what
differs between the two: the annotation rows in KEMDy20's column shape, a finder of each row's
wav/txt, the Segment ID parser and the transcript encoding and cleaner. The row loop that checks
and labels them is shared (koemo.dataset.prepare.scan_corpus). `out` is prepare's collector of
dropped rows, problem files and notes.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from koemo.config.schema import Data, TranscriptEncoding
from koemo.dataset import kemdy19, kemdy20
from koemo.dataset.corpora import corpus_of

if TYPE_CHECKING:
    from koemo.dataset.collector import Collector


class Corpus(NamedTuple):
    """What differs between the corpora; the row loop of scan_corpus is shared."""
    name: str
    frames: list | None     # (session, annotation file, rows in KEMDy20's column shape)
    folders: object         # root, names, folder_problem, locate, claim and unclaimed (as
                            # corpus_files.WavFolders)
    parse: Callable
    encoding: TranscriptEncoding
    clean: Callable
    counts: dict            # corpus-specific counts for the report
    unreadable: list        # annotation files that cannot be used as they are (CorpusFileError)
    annotation_names: Callable  # session -> the names of its annotation file(s)
    expected_name: Callable     # a CSV's name -> the annotation file it most likely stands for
    name_pattern: str           # how annotation files must be named


def open_corpus(data_root: Path, data: Data, out: Collector) -> Corpus:
    """The readers of the corpus under `data_root` (data.corpus, or detected from its files)."""
    name = corpus_of(data_root, data)
    if name == "kemdy19":
        frames, counts, listed, unreadable = kemdy19.annotation_frames(
            data_root, data.kemdy19_labels, out)
        return Corpus(name, frames, kemdy19.DialogueFolders(data_root, listed, out),
                       kemdy19.parse_segment_id, kemdy19.TRANSCRIPT_ENCODING,
                       kemdy19.clean_transcript, {"kemdy19": counts}, unreadable,
                       kemdy19.annotation_names, kemdy19.expected_annotation_name,
                       kemdy19.ANNOTATION_FILE_PATTERN)
    # KEMDy20's rows and files are read by koemo.dataset.prepare (row by row, unreadable files
    # apart): no frames, folders or unreadable files here.
    return Corpus(name, None, None, kemdy20.parse_segment_id, data.transcript_encoding,
                   kemdy20.clean_transcript, {}, [], kemdy20.annotation_names,
                   kemdy20.expected_annotation_name, kemdy20.ANNOTATION_FILE_PATTERN)
