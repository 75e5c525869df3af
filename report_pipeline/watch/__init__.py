"""Watching a run: plain progress lines, the live terminal display, the resource monitor.

They consume what the run reports (`run.outcome`) and never import the engine's internals.
"""
