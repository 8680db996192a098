"""Batched evaluation of many interventions: the engine every stage uses."""
