"""The `synthetic` section: the recipe of the synthetic KEMDy20 (and KEMDy19) corpus the demo and
the tests write (koemo.synth), with the real-file faults it can plant. Its own module so that
koemo.config.schema stays one screenful per concern; koemo.synth reads its bounds from here.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union, get_args

from annotated_types import Ge, Le
from pydantic import StrictFloat, StrictInt, ValidationInfo, model_validator

from koemo.config.section import Count, Section, Seed, refuse, setting

# Real-file faults koemo.synth.faults plants into a synthetic corpus (`koemo synth --faults`).
SyntheticFault = Literal["stray-comma", "missing-column", "extra-column", "out-of-range-labels",
                         "utf8-transcripts", "pcm8-wavs", "dangling-link", "start-after-end",
                         "repeated-row", "conflicting-id", "unannotated-session",
                         "header-only-session", "duplicate-download-name"]
SYNTHETIC_FAULTS = get_args(SyntheticFault)
# Faults `all` leaves out (they take a session's rows away or stop prepare): planted by name only.
FAULTS_ONLY_BY_NAME = ("header-only-session", "duplicate-download-name")

# Sessions are numbered with two digits; the generators clip utterance lengths to DURATION_RANGE
# (seconds), so the mean length a recipe asks for lies in it.
DURATION_RANGE = (1.0, 8.0)
Sessions = Annotated[StrictInt, Ge(1), Le(99)]
MeanDuration = Annotated[StrictFloat, Ge(DURATION_RANGE[0]), Le(DURATION_RANGE[1])]


class SyntheticKemdy19(Section):
    sessions: Sessions = setting(10, "sessions of the synthetic KEMDy19 corpus")
    utterances_per_session: Annotated[StrictInt, Ge(20)] = setting(
        24, "utterances per session (at least 20: both actors in all ten dialogues)")
    mean_duration: MeanDuration = setting(2.5, "mean utterance length (s)")
    seed: Seed = setting(0, "generator seed")


class Synthetic(Section):
    unread_by_training = True
    sessions: Sessions = setting(4, "sessions of the synthetic corpus")
    utterances_per_session: Annotated[StrictInt, Ge(12)] = setting(
        80, "utterances per session (at least 12: both speakers in all six scripts)")
    mean_duration: MeanDuration = setting(3.5, "mean utterance length (s)")
    seed: Seed = setting(0, "generator seed")
    silent_recordings: Count = setting(0, "recordings without signal per session (a quarter at most)")
    faults: list[Union[SyntheticFault, Literal["all"]]] = setting(
        [], "real-file faults planted into the corpus (names of `koemo synth --faults`, or "
            "[all]: every one but those that take a session's rows away)")
    kemdy19: Optional[SyntheticKemdy19] = setting(
        None, "a synthetic KEMDy19 for the cross-corpus study (notebook 5-3; null: none)")

    @model_validator(mode="after")
    def _silent_share(self, info: ValidationInfo) -> "Synthetic":
        if self.silent_recordings > self.utterances_per_session // 4:
            refuse(info, "silent_recordings", self.silent_recordings,
                   f"at most utterances_per_session // 4 = {self.utterances_per_session // 4}")
        return self
