"""Moving files safely and reversibly: the plan, the journaled moves, undo, and settling a killed run.

``safe_move`` moves one file without overwriting, losing or following a link; ``clean`` plans which
indexed files go into which folder and moves them, each move journaled before and after; ``undo`` puts
a run back; ``recovery`` settles what a killed clean or undo left half-done; ``session`` opens an index
for moving files, with its journal and interrupted runs settled.
"""
