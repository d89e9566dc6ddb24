"""random_swap / random_delete on sentencepiece pieces: counts of the original, determinism per
seed, and the defined behaviour for 0, 1 and 2 pieces."""
from __future__ import annotations

import numpy as np
import pytest

from koemo.text.augment import delete_count, random_delete, random_swap, swap_count


def pieces_of(n: int) -> list[str]:
    return [f"▁p{i}" for i in range(n)]


def is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(piece in it for piece in short)


@pytest.mark.parametrize("n, swaps, deletes", [(2, 2, 1), (4, 2, 1), (5, 2, 2), (10, 3, 3),
                                               (15, 4, 4), (20, 6, 6), (64, 19, 19)])
def test_counts_follow_the_original_rule(n, swaps, deletes):
    # max(round(0.3 n), 2) swap positions, max(round(0.3 n), 1) deletions; Python's round
    # rounds half to even (5: 1.5 -> 2, 15: 4.5 -> 4) as in the original.
    assert swap_count(n, 0.3) == swaps
    assert delete_count(n, 0.3) == deletes


@pytest.mark.parametrize("n", range(2, 40))
def test_swap_moves_exactly_the_drawn_positions(n):
    pieces = pieces_of(n)
    out = random_swap(pieces, 0.3, np.random.default_rng(n))
    assert sorted(out) == sorted(pieces)
    # Chained swaps over k distinct positions rotate them: all k move, nothing else does.
    assert sum(a != b for a, b in zip(out, pieces)) == swap_count(n, 0.3)


@pytest.mark.parametrize("n", range(2, 40))
def test_delete_removes_the_counted_pieces_in_order(n):
    pieces = pieces_of(n)
    out = random_delete(pieces, 0.3, np.random.default_rng(n))
    assert len(out) == n - delete_count(n, 0.3)
    assert is_subsequence(out, pieces)


@pytest.mark.parametrize("op", [random_swap, random_delete])
def test_same_seed_same_result_other_seeds_differ(op):
    pieces = pieces_of(12)
    first = op(pieces, 0.3, np.random.default_rng(824))
    assert op(pieces, 0.3, np.random.default_rng(824)) == first
    assert op(pieces, 0.3, 824) == first                      # an int seed means the same
    others = {tuple(op(pieces, 0.3, np.random.default_rng(seed))) for seed in range(20)}
    assert len(others) > 5


@pytest.mark.parametrize("op", [random_swap, random_delete])
def test_input_is_not_modified(op):
    pieces = pieces_of(9)
    kept = list(pieces)
    op(pieces, 0.3, np.random.default_rng(0))
    assert pieces == kept


@pytest.mark.parametrize("op", [random_swap, random_delete])
def test_zero_and_one_piece_come_back_unchanged(op):
    assert op([], 0.3, np.random.default_rng(0)) == []
    assert op(["▁안녕"], 0.3, np.random.default_rng(0)) == ["▁안녕"]


def test_two_pieces_swap_and_keep_one_on_delete():
    assert random_swap(["▁a", "b"], 0.3, np.random.default_rng(1)) == ["b", "▁a"]
    out = random_delete(["▁a", "b"], 0.3, np.random.default_rng(1))
    assert len(out) == 1 and out[0] in ("▁a", "b")


def test_ratio_above_one_is_capped_at_the_text_length():
    pieces = pieces_of(5)
    assert sorted(random_swap(pieces, 2.0, np.random.default_rng(0))) == sorted(pieces)
    assert len(random_delete(pieces, 2.0, np.random.default_rng(0))) == 1
