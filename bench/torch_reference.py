"""PyTorch versions of three colorkit networks, layer for layer, as a speed reference.

The U-Net generator and the PatchGAN of ``colorkit.models.pix2pix`` and Zhang's
ECCV16 network of ``colorkit.models.zhang``, written the way a PyTorch user
writes them (NCHW, ``nn.Conv2d``/``nn.ConvTranspose2d``, BatchNorm with
PyTorch's defaults, which are colorkit's), with the same channel counts,
kernels, strides and padding grid: given the Keras model's weights
(``copy_weights``) each computes what the Keras model computes, which
``tests/test_bench.py`` checks. Where Keras' "same" padding of a stride-2 3x3
convolution pads only at the bottom and right (ECCV16), the module pads the
same way, so the two grids agree.

They live in bench/ only: colorkit itself never imports torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from colorkit.models import pix2pix
from colorkit.models.blocks import AB_CHANNELS, L_CHANNELS, channels

#: pix2pix's LeakyReLU slope and dropout rate, as the Keras models use them.
LEAKY_SLOPE = pix2pix.LEAKY_SLOPE
DROPOUT_RATE = pix2pix.DROPOUT_RATE

# The U-Net's channel counts per level (pix2pix.build_unet_generator's lists, at width 1).
UNET_DOWN = (64, 128, 256, 512, 512, 512, 512, 512)
UNET_UP = (512, 512, 512, 512, 256, 128, 64)  # levels 7 .. 1


def _bn(count: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(count, eps=1e-5, momentum=0.1)


class Down(nn.Sequential):
    """4x4 stride-2 convolution (padding 1), optional BatchNorm, LeakyReLU 0.2."""

    def __init__(self, cin: int, cout: int, batchnorm: bool = True, bias: bool = False):
        layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=bias)]
        layers += [_bn(cout)] if batchnorm else []
        super().__init__(*layers, nn.LeakyReLU(LEAKY_SLOPE))


class Up(nn.Module):
    """4x4 stride-2 transposed convolution, BatchNorm, optional dropout, ReLU, then the skip."""

    def __init__(self, cin: int, cout: int, dropout: bool):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
        self.bn = _bn(cout)
        self.dropout = nn.Dropout(DROPOUT_RATE) if dropout else nn.Identity()

    def forward(self, x, skip):
        x = torch.relu(self.dropout(self.bn(self.conv(x))))
        return torch.cat([x, skip], 1)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net of ``depth`` levels: normalised L (N, 1, H, W) -> normalised ab (N, 2, H, W)."""

    def __init__(self, depth: int = pix2pix.MAX_DEPTH, width: float = 1.0):
        super().__init__()
        down = [channels(c * width) for c in UNET_DOWN[:depth]]
        up = [channels(c * width) for c in UNET_UP[pix2pix.MAX_DEPTH - depth:]]
        self.downs = nn.ModuleList(
            Down(cin, cout, batchnorm=level > 1)
            for level, (cin, cout) in enumerate(zip([L_CHANNELS, *down], down), start=1)
        )
        skips = down[-2::-1]  # the encoder's maps from the innermost but one out
        ups, cin = [], down[-1]
        for index, (cout, skip) in enumerate(zip(up, skips)):
            ups.append(Up(cin, cout, dropout=index < pix2pix.DROPOUT_BLOCKS))
            cin = cout + skip
        self.ups = nn.ModuleList(ups)
        self.last = nn.ConvTranspose2d(cin, AB_CHANNELS, 4, 2, 1)

    def forward(self, x):
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        for up, skip in zip(self.ups, reversed(skips[:-1])):
            x = up(x, skip)
        return torch.tanh(self.last(x))


class PatchGAN(nn.Module):
    """The PatchGAN of ``depth`` stride-2 blocks: (L, ab) -> one logit per patch."""

    def __init__(self, depth: int = pix2pix.PATCHGAN_DEPTH, width: float = 1.0):
        super().__init__()
        filters = [channels(c * width) for c in (64, 128, 256, 512, 512, 512)[:depth]]
        blocks = [Down(L_CHANNELS + AB_CHANNELS, filters[0], batchnorm=False, bias=True)]
        blocks += [Down(cin, cout) for cin, cout in zip(filters, filters[1:])]
        last = channels(min(64 * 2**depth, 512) * width)
        self.blocks = nn.Sequential(
            *blocks,
            nn.Conv2d(filters[-1], last, 4, 1, 1, bias=False), _bn(last), nn.LeakyReLU(LEAKY_SLOPE),
            nn.Conv2d(last, 1, 4, 1, 1),
        )

    def forward(self, l_norm, ab_norm):
        return self.blocks(torch.cat([l_norm, ab_norm], 1))


class ZhangECCV16(nn.Module):
    """Zhang et al.'s ECCV16 network: normalised L -> ``num_bins`` logits at 1/4 resolution."""

    def __init__(self, num_bins: int, width: float = 1.0):
        super().__init__()
        plan = [  # (channels, convs, last stride, dilation) of conv1 .. conv7
            (64, 2, 2, 1), (128, 2, 2, 1), (256, 3, 2, 1), (512, 3, 1, 1), (512, 3, 1, 2), (512, 3, 1, 2),
            (512, 3, 1, 1),
        ]
        blocks, cin = [], L_CHANNELS
        for filters, convs, stride, dilation in plan:
            cout = channels(filters * width)
            layers = []
            for index in range(convs):
                last = index == convs - 1
                layers += [_Conv3x3(cin, cout, stride if last else 1, dilation), nn.ReLU()]
                cin = cout
            blocks.append(nn.Sequential(*layers, _bn(cout)))
        up = channels(256 * width)
        blocks.append(nn.Sequential(
            nn.ConvTranspose2d(cin, up, 4, 2, 1), nn.ReLU(),
            _Conv3x3(up, up), nn.ReLU(), _Conv3x3(up, up), nn.ReLU(),
            nn.Conv2d(up, num_bins, 1),
        ))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class _Conv3x3(nn.Conv2d):
    """A 3x3 convolution on Keras' "same" grid: stride 2 pads one pixel at the bottom and right only."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__(cin, cout, 3, stride, padding=0 if stride == 2 else dilation, dilation=dilation)

    def forward(self, x):
        if self.stride[0] == 2:
            x = functional.pad(x, (0, 1, 0, 1))
        return super().forward(x)


# --- The steps timed ------------------------------------------------------------------------------


def make_gan_step(generator: UNetGenerator, discriminator: PatchGAN, learning_rate: float, beta_1: float,
                  l1_weight: float):
    """The adversarial step of ``colorkit.training.gan.make_gan_train_step`` in PyTorch: one
    forward pass of each network, BCE on logits, the generator's loss with L1 and the
    discriminator's halved, each network's gradients from its own loss, two Adam steps.

    Returns ``step(l_norm, ab_norm) -> generator loss`` on NCHW tensors."""
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=learning_rate, betas=(beta_1, 0.999))
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=(beta_1, 0.999))
    g_params, d_params = list(generator.parameters()), list(discriminator.parameters())
    bce = functional.binary_cross_entropy_with_logits

    def step(l_norm, ab_true):
        generator.train()
        discriminator.train()
        ab_fake = generator(l_norm)
        real_logits = discriminator(l_norm, ab_true)
        fake_logits = discriminator(l_norm, ab_fake)
        g_total = bce(fake_logits, torch.ones_like(fake_logits)) + l1_weight * (ab_true - ab_fake).abs().mean()
        d_total = 0.5 * (bce(real_logits, torch.ones_like(real_logits))
                         + bce(fake_logits, torch.zeros_like(fake_logits)))
        g_grads = torch.autograd.grad(g_total, g_params, retain_graph=True)
        d_grads = torch.autograd.grad(d_total, d_params)
        for params, grads, optimizer in ((g_params, g_grads, g_optimizer), (d_params, d_grads, d_optimizer)):
            for param, grad in zip(params, grads):
                param.grad = grad
            optimizer.step()
        return float(g_total.detach())

    return step


def make_inference(module: nn.Module):
    """``run(x) -> numpy array``: the module in eval mode without gradients, on one NCHW batch."""
    module.eval()

    def run(x):
        with torch.inference_mode():
            return module(x).numpy()

    return run


def nchw(array) -> torch.Tensor:
    """An NHWC numpy batch as a contiguous NCHW tensor."""
    return torch.from_numpy(np.array(np.asarray(array).transpose(0, 3, 1, 2), order="C"))


# --- Keras weights into the PyTorch modules (for the equality test) ---------------------------------


def copy_weights(keras_model, module: nn.Module) -> None:
    """Copy every weight of ``keras_model`` into ``module``, layer by layer in build order.

    Both list their convolutions and BatchNorms in the same order; kernels go
    from Keras' (h, w, in, out) (transposed: (h, w, out, in)) to PyTorch's
    (out, in, h, w) (transposed: (in, out, h, w)), which is the same axis
    permutation in both cases."""
    keras_layers = [layer for layer in keras_model.layers if layer.weights]
    torch_layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d))]
    if len(keras_layers) != len(torch_layers):
        raise ValueError(f"{len(keras_layers)} Keras layers with weights, {len(torch_layers)} PyTorch ones")
    with torch.no_grad():
        for source, target in zip(keras_layers, torch_layers):
            values = [np.asarray(w) for w in source.get_weights()]
            if isinstance(target, nn.BatchNorm2d):
                for tensor, value in zip((target.weight, target.bias, target.running_mean, target.running_var), values):
                    tensor.copy_(torch.from_numpy(value))
                continue
            target.weight.copy_(torch.from_numpy(values[0].transpose(3, 2, 0, 1).copy()))
            if target.bias is not None:
                target.bias.copy_(torch.from_numpy(values[1]))
