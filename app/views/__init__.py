"""Widgets: they take a view-model and render it; they never decide anything themselves."""
