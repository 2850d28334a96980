"""Task adapters."""
