"""Building blocks: neurons, quantizers, attention and shortcut variants."""
