"""The key map shared by the Meta-SpikeFormer layouts (SDT v2 and QSD-Transformer) -> ``SpikingMetaFormer``.

Official names (``classification/models.py`` of both repositories, ``Spiking_vit_MetaFormer``):
``downsample1_1`` (stem), ``ConvBlock1_1.0``, ``downsample1_2``, ``ConvBlock1_2.0``, ``downsample2``,
``ConvBlock2_1.0``, ``ConvBlock2_2.0``, ``downsample3``, ``block3.{j}``, ``downsample4``, ``block4.{j}``,
``head``. Down-sampling: ``encode_conv`` (bias) + ``encode_bn``. ``MS_ConvBlock``: ``Conv.{pwconv1, bn1,
dwconv, pwconv2, bn2}`` (SepConv) then ``conv1, bn1, conv2, bn2``. ``MS_Block``: ``attn.{q,k,v,proj}_conv``
= ``Sequential(RepConv, BatchNorm2d)`` with ``RepConv.body`` = ``[conv1x1, BNAndPadLayer.bn, [dw 3x3,
conv1x1, bn]]``; ``mlp.fc{1,2}_conv`` are Conv1d ``[O, I, 1]`` (ours 1x1 Conv2d) + BatchNorm1d ``fc{1,2}_bn``;
QSD adds ``layer_scale1/2``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from bench.checkpoints.keymap import KeyMap

Conv = Callable[[KeyMap, str, str, nn.Module, bool], None]


def _plain(km: KeyMap, official: str, ours: str, model: nn.Module, conv1d: bool = False) -> None:
    km.conv(official, ours, model, conv1d)


def _conv_block(km: KeyMap, conv: Conv, o: str, ours: str, model: nn.Module) -> None:
    sep, ch = f"{ours}.0.branch", f"{ours}.1.branch"
    for off, mine in (("pwconv1", "pw1"), ("dwconv", "dw"), ("pwconv2", "pw2")):
        conv(km, f"{o}.Conv.{off}", f"{sep}.{mine}", model, False)
    km.bn(f"{o}.Conv.bn1", f"{sep}.bn1")
    km.bn(f"{o}.Conv.bn2", f"{sep}.bn2")
    for j in (1, 2):
        conv(km, f"{o}.conv{j}", f"{ch}.conv{j}", model, False)
        km.bn(f"{o}.bn{j}", f"{ch}.bn{j}")


def _block(km: KeyMap, conv: Conv, o: str, ours: str, model: nn.Module, layer_scale: bool) -> None:
    for off, mine in (("q", "q"), ("k", "k"), ("v", "v"), ("proj", "out")):
        rep, p = f"{o}.attn.{off}_conv", f"{ours}.attn.branch.{mine}"
        conv(km, f"{rep}.0.body.0", f"{p}.conv.conv1", model, False)
        km.bn(f"{rep}.0.body.1.bn", f"{p}.conv.bn1.bn")
        conv(km, f"{rep}.0.body.2.0", f"{p}.conv.dw", model, False)
        conv(km, f"{rep}.0.body.2.1", f"{p}.conv.conv2", model, False)
        km.bn(f"{rep}.0.body.2.2", f"{p}.conv.bn2")
        km.bn(f"{rep}.1", f"{p}.bn")
    for j in (1, 2):
        conv(km, f"{o}.mlp.fc{j}_conv", f"{ours}.mlp.branch.fc{j}", model, True)
        km.bn(f"{o}.mlp.fc{j}_bn", f"{ours}.mlp.branch.bn{j}")
    if layer_scale:
        km.add(f"{o}.layer_scale1", f"{ours}.attn.scale.gamma")
        km.add(f"{o}.layer_scale2", f"{ours}.mlp.scale.gamma")


def metaformer_keymap(
    layout: str, model: nn.Module, conv: Conv = _plain, layer_scale: bool = False
) -> KeyMap:
    """The key map of a Meta-SpikeFormer-layout checkpoint; ``conv`` adds one conv's tensors."""
    km = KeyMap(layout)

    def down(o: str, ours: str) -> None:
        conv(km, f"{o}.encode_conv", f"{ours}.conv", model, False)
        km.bn(f"{o}.encode_bn", f"{ours}.bn")

    down("downsample1_1", "stem")
    _conv_block(km, conv, "ConvBlock1_1.0", "stage1.0", model)
    down("downsample1_2", "stage1.1")
    _conv_block(km, conv, "ConvBlock1_2.0", "stage1.2", model)
    down("downsample2", "stage2.0")
    _conv_block(km, conv, "ConvBlock2_1.0", "stage2.1", model)
    _conv_block(km, conv, "ConvBlock2_2.0", "stage2.2", model)
    for s in (3, 4):
        stage = model.get_submodule(f"stage{s}")
        down(f"downsample{s}", f"stage{s}.0")
        for j in range(len(stage) - 1):
            _block(km, conv, f"block{s}.{j}", f"stage{s}.{j + 1}", model, layer_scale)
    conv(km, "head", "head", model, False)
    return km
