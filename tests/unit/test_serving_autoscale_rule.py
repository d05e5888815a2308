"""EAS's autoscaling rule: ceil(current x metric / threshold), the largest over the strategies, 10%
tolerance, and the stabilization windows (a scale up once the whole up window asks for more, a
scale down once the whole down window asks for less)."""

from __future__ import annotations

from pai_lab.serving.autoscaling import bounded, recommend, stabilized


def test_the_rule_takes_the_largest_strategy_and_leaves_ten_percent_alone():
    # threshold 10 qps: 11 is within tolerance, 11.5 is not (EAS: scale-out above 11)
    assert recommend(1, 1, {"qps": 11.0}, {"qps": 10})[0] == 1
    assert recommend(1, 1, {"qps": 11.5}, {"qps": 10})[0] == 2
    assert recommend(2, 2, {"qps": 9.5}, {"qps": 10})[0] == 2
    count, why = recommend(2, 2, {"qps": 40.0, "cpu": 50.0}, {"qps": 10, "cpu": 80})
    assert count == 8 and why == "qps 40.0 per instance, threshold 10"
    count, why = recommend(2, 2, {"qps": 4.0, "cpu": 170.0}, {"qps": 10, "cpu": 80})
    assert count == 5 and why.startswith("cpu 170.0% per instance")
    assert recommend(4, 4, {"qps": 0.0}, {"qps": 10})[0] == 0
    # exactly on a multiple: no extra instance from rounding
    assert recommend(3, 3, {"qps": 20.0}, {"qps": 30})[0] == 2


def test_no_metrics_keep_the_count_and_starting_instances_are_never_taken_away():
    assert recommend(3, 3, {}, {"qps": 10}) == (3, "no metrics yet")
    # two of four instances still load: the two ready ones see little load, yet nothing is removed
    assert recommend(4, 2, {"qps": 1.0}, {"qps": 10})[0] == 4
    assert recommend(4, 2, {"qps": 30.0}, {"qps": 10})[0] == 6


def test_bounds():
    assert bounded(0, 1, 4) == 1 and bounded(9, 1, 4) == 4 and bounded(3, 1, 4) == 3


def test_windows_scale_up_at_once_and_down_only_after_the_whole_window_agrees():
    # scale up window 0: the latest recommendation alone decides
    assert stabilized(1, [(0.0, 1), (1.0, 3)], 1.0, up=0, down=300) == 3
    # a 5 s up window takes the smallest recommendation in it: a burst of one look does not count
    assert stabilized(1, [(0.0, 1), (4.0, 3), (5.0, 4)], 5.0, up=5, down=300) == 1
    assert stabilized(1, [(0.0, 3), (4.0, 3), (5.0, 4)], 5.0, up=5, down=300) == 3
    # down: the largest recommendation in the window, and only once all of it is lower
    history = [(0.0, 3), (10.0, 1), (20.0, 1)]
    assert stabilized(3, history, 20.0, up=0, down=30) == 3
    assert stabilized(3, history, 40.0, up=0, down=30) == 1  # (0, 3) has left the window
    assert stabilized(3, [(10.0, 2), (20.0, 1)], 40.0, up=0, down=30) == 2
    assert stabilized(3, [(15.0, 1), (20.0, 1)], 40.0, up=0, down=30) == 1
    assert stabilized(2, [(0.0, 2)], 0.0, up=0, down=300) == 2
