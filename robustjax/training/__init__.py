"""Train state, objectives, jitted data-parallel train step, fit loop and checkpoints."""
