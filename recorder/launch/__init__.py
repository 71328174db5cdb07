"""Connecting an agent: the launcher, its menu, the agents/ registry, running the agent,
the demo."""
