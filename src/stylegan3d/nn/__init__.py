"""Networks: equalised-lr layers, modulated convolution, generator, discriminator."""

from stylegan3d.nn.discriminator import Discriminator, MinibatchStd
from stylegan3d.nn.generator import (
    Generator,
    MappingNetwork,
    SynthesisNetwork,
    seeds_to_z,
    to_unit_range,
    truncate,
)
from stylegan3d.nn.layers import Blur, EqualConv, EqualLinear, fir_filter, fir_kernel
from stylegan3d.nn.modulated import ModulatedConv, modulated_conv

__all__ = [
    "Blur",
    "Discriminator",
    "EqualConv",
    "EqualLinear",
    "Generator",
    "MappingNetwork",
    "MinibatchStd",
    "ModulatedConv",
    "SynthesisNetwork",
    "fir_filter",
    "fir_kernel",
    "modulated_conv",
    "seeds_to_z",
    "to_unit_range",
    "truncate",
]


def count_params(module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
