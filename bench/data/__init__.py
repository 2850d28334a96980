"""Datasets in their real on-disk formats: generators of small learnable sets and their loaders."""
