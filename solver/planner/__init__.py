"""Finds the plan: the search space of knob values and batch splits, the candidate tables
(speed and memory per combination), the CP-SAT model that chooses, `recommend` with its
runners-up, the follow-up questions (longest sequence, fewest GPUs, nearest fit), the
explanation when nothing fits, and sweeps over grids of questions."""
