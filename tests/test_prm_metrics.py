"""Line-correctness metrics: pair accuracy, in-sample baselines, failing-lines report."""

from prm_jax.prm import metrics


def test_pair_accuracy_counts_ties_as_half():
    assert metrics.pair_accuracy([1.0, 0.5, 0.0], [0.0, 0.5, 1.0]) == 0.5
    assert metrics.pair_accuracy([1.0, 1.0], [0.0, -1.0]) == 1.0


def test_baselines_see_only_position_or_task():
    labels = [[1, -1, -1], [1, 1, -1], [-1, -1], [0, 1, -1]]
    pos = metrics.position_scores(labels)
    assert pos[0] == [1.0, 1 / 3, -1.0] and pos[2] == [-1.0, -1.0]
    task = metrics.task_mean_scores(labels, ["a", "a", "b", "c"])
    assert task[0] == task[1] == [0.0] * 3 and task[2] == [-1.0, -1.0]


def test_failing_line_report_excludes_passing_responses():
    labels = [[1, 1], [1, -1], [-1, -1], [1, 1, -1]]
    scores = [[0.9, 0.9], [0.5, -0.5], [-0.2, -0.9], [0.3, 0.1, -0.4]]
    report = metrics.failing_line_report(scores, labels, [True, False, False, False],
                                         [2, 2, 2, 3], ["a", "b", "c", "d"])
    assert report["failing_responses"] == 3
    assert report["failing"]["scorer"]["lines"] == 7 and report["mixed"]["scorer"]["lines"] == 9
    assert report["failing"]["scorer"]["auroc"] == 1.0
    assert set(report["by_horizon"]) == {"2", "3"} and report["by_horizon"]["2"]["responses"] == 2


def test_line_token_targets_cover_each_line_up_to_its_reward_token():
    from prm_jax.prm.dense_targets import line_token_targets

    # Response tokens start at 3; lines end at tokens 5, 5 (merged) and 8 (a comment).
    targets, mask = line_token_targets(10, 3, [5, 5, 8], [1, -1, 0])
    assert targets.tolist() == [0, 0, 0, 1, 1, -1, 0, 0, 0, 0]
    assert mask.tolist() == [False] * 3 + [True] * 6 + [False]
