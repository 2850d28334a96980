"""Parameter counts and model size: true bytes at each layer's bit-width, and the QSD paper's convention."""

from __future__ import annotations

from torch import nn

from bench.nn.quant import QUANTIZED_LAYERS


def _quantized_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, QUANTIZED_LAYERS) and m.bits < 32]


def weight_bits(model: nn.Module) -> int:
    """The most common weight bit-width of the model's Conv/Linear layers (32 if none is quantized)."""
    counts: dict[int, int] = {}
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            b = getattr(m, "bits", 32)
            counts[b] = counts.get(b, 0) + m.weight.numel()
    return max(counts, key=counts.get) if counts else 32


def param_summary(model: nn.Module) -> dict[str, int]:
    """Total parameters; low-bit weights; their fp32 step sizes; everything else (full precision)."""
    total = sum(p.numel() for p in model.parameters())
    layers = _quantized_layers(model)
    quantized = sum(m.weight.numel() for m in layers)
    scales = sum(m.quantizer.step.numel() for m in layers)
    return dict(total=total, quantized=quantized, scales=scales, full_precision=total - quantized - scales)


def model_size(model: nn.Module) -> dict[str, float]:
    """Size in MB (1e6 bytes) by two conventions.

    - ``true_mb``: low-bit weights at ``bits / 8`` bytes each, plus every other parameter (fp32 step sizes,
      biases, BN, full-precision layers) at 4 bytes — what a packed checkpoint holds.
    - ``paper_mb``: QSD's figure convention, (parameters without step sizes) x bits_w / 32 / 1e6, a
      "32-bit-equivalent" count (55.4 M at 4 bits -> 6.9).
    """
    counts = param_summary(model)
    packed = sum(m.weight.numel() * m.bits / 8 for m in _quantized_layers(model))
    true_bytes = packed + 4 * (counts["total"] - counts["quantized"])
    bits = weight_bits(model)
    paper = (counts["total"] - counts["scales"]) * bits / 32 / 1e6
    return dict(true_mb=true_bytes / 1e6, paper_mb=paper, bits_w=bits)
