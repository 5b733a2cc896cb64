"""The actlab lab: tasks, models and the machinery that trains and compares activations."""
