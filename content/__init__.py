"""Bundled content (the story), shipped as package data so any install finds it."""
