"""BICLab/Spike-Driven-Transformer (SDT v1) checkpoints -> ``bench.models.sdt``.

Official names (``model/spikeformer.py``, ``module/sps.py``, ``module/ms_conv.py``):
``patch_embed.proj_conv{,1,2,3}`` / ``proj_bn{,1,2,3}`` (SPS convs, no bias), ``patch_embed.rpe_conv`` /
``rpe_bn``; per block ``block.{i}.attn.{q,k,v}_conv`` (1x1, no bias) + ``{q,k,v}_bn``, ``attn.proj_conv``
(bias) + ``proj_bn``, ``block.{i}.mlp.fc{1,2}_conv`` (1x1, bias) + ``fc{1,2}_bn``; ``head`` (Linear).
LIF neurons hold no tensors. Dropped: ``block.{i}.attn.talking_heads.weight`` ``[h, h, 1]`` (a Conv1d built
but never called by ``MS_SSA_Conv.forward``).
"""

from __future__ import annotations

from torch import Tensor, nn

from bench.checkpoints.keymap import KeyMap

LAYOUT = "sdt_v1"
FAMILIES = ("sdt",)
SIGNATURE = "patch_embed.proj_conv.weight"


def matches(state: dict[str, Tensor]) -> bool:
    """SPS names of the official ``MS_SPS``."""
    return SIGNATURE in state


def keymap(model: nn.Module) -> KeyMap:
    """The SDT v1 key map for ``model`` (a ``SpikeDrivenTransformer``)."""
    km = KeyMap(LAYOUT)
    for i, suffix in enumerate(("", "1", "2", "3")):
        km.conv(f"patch_embed.proj_conv{suffix}", f"patch_embed.convs.{i}", model)
        km.bn(f"patch_embed.proj_bn{suffix}", f"patch_embed.bns.{i}")
    km.conv("patch_embed.rpe_conv", "patch_embed.rpe_conv", model)
    km.bn("patch_embed.rpe_bn", "patch_embed.rpe_bn")
    for i, blk in enumerate(model.blocks):
        o, a = f"block.{i}", f"blocks.{i}.attn.branch"
        for name in ("q", "k", "v"):
            km.conv(f"{o}.attn.{name}_conv", f"{a}.{name}.conv", model)
            km.bn(f"{o}.attn.{name}_bn", f"{a}.{name}.bn")
        km.conv(f"{o}.attn.proj_conv", f"{a}.out.conv", model)
        km.bn(f"{o}.attn.proj_bn", f"{a}.out.bn")
        heads = blk.attn.branch.heads
        km.drop(f"{o}.attn.talking_heads.weight", (heads, heads, 1), "SDT v1 talking_heads: never called")
        m = f"blocks.{i}.mlp.branch"
        for j in (1, 2):
            km.conv(f"{o}.mlp.fc{j}_conv", f"{m}.fc{j}", model)
            km.bn(f"{o}.mlp.fc{j}_bn", f"{m}.bn{j}")
    km.conv("head", "head", model)
    return km
