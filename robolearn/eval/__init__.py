"""Evaluation: policy rollouts in simulation (household, Meta-World) and on robots, success rates with
Wilson intervals, reports, the R3M-style protocol and a leaderboard."""
