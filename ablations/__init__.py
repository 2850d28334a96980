"""Ablation sweeps."""
