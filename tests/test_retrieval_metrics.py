import numpy as np
import pytest

from training.retrieval_metrics import leave_one_out


def test_leave_one_out_matches_a_hand_computation():
    # Unit vectors at these angles: neighbours are ordered by angular distance.
    angles = np.array([0.0, 0.1, 0.25, 1.0, 1.1, 3.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = ["a", "a", "b", "b", "b", "c"]
    report = leave_one_out(vectors, labels, ks=(1, 2))
    # Rankings (self excluded): q0: 1,2,3,4  q1: 0,2,3,4  q2: 1,0,3,4  q3: 4,2,1,0  q4: 3,2,1,0.
    # q5 is alone in class c and is not queried.
    assert report.queries == 5 and report.singletons_left_out == 1
    assert report.top_k[1] == pytest.approx(4 / 5)  # only q2 misses
    assert report.top_k[2] == pytest.approx(4 / 5)  # q2's first two are both class a
    # AP@10: q0, q1 find their one relevant item first (1.0); q2 finds b's at ranks 3 and 4;
    # q3 and q4 find both other b's at ranks 1 and 2 (1.0).
    expected = (1 + 1 + (1 / 3 + 2 / 4) / 2 + 1 + 1) / 5
    assert report.map_at_10 == pytest.approx(expected)


def test_perfect_clusters_score_one():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 8))
    vectors = np.repeat(centres, 4, axis=0) + rng.standard_normal((12, 8)) * 1e-3
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    report = leave_one_out(vectors, [c for c in "abc" for _ in range(4)])
    assert report.top_k == {1: 1.0, 5: 1.0, 10: 1.0} and report.map_at_10 == pytest.approx(1.0)
