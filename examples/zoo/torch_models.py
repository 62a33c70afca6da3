"""The zoo's PyTorch modules: small random-weight versions of the models
on-device speech and vision run. Imports torch (an optional extra); zoo.py
decides what each family feeds them and how they are exported.

Widths are small where the family does not fix them, so that exports and
compiles stay fast. MobileNetV2 (width 0.35, 96x96) and ResNet-18 (64x64) keep
their published block structure. Every module is built under a fixed torch
seed by zoo.py; nothing here draws random numbers at import.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

MFCC_COEFFS, KWS_CLASSES = 10, 12
VOCAB = 29


# -- keyword spotters and the RNN-T parts -----------------------------------------------
class KeywordSpotter(nn.Module):
    """A recurrent layer over 49x10 MFCC frames, the last step's output to 12
    classes. `cell` is nn.LSTM, nn.GRU or nn.RNN."""

    def __init__(self, cell: type[nn.Module], hidden: int = 32):
        super().__init__()
        self.rnn = cell(MFCC_COEFFS, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, KWS_CLASSES)

    def forward(self, mfcc):
        out = self.rnn(mfcc)[0]
        return self.fc(out[:, -1])


class RnntEncoder(nn.Module):
    """A 2-layer LSTM over feature frames, projected to the joint width."""

    def __init__(self, features: int = 20, hidden: int = 32, joint: int = 32):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=2, batch_first=True)
        self.proj = nn.Linear(hidden, joint)

    def forward(self, frames):
        return self.proj(self.lstm(frames)[0])


class CtcAcousticModel(nn.Module):
    """A CTC recognizer: an LSTM over feature frames, a Linear to the vocabulary
    (blank included), per-frame log probabilities (log_softmax)."""

    def __init__(self, features: int = 20, hidden: int = 32):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.out = nn.Linear(hidden, VOCAB)

    def forward(self, frames):
        return torch.log_softmax(self.out(self.lstm(frames)[0]), dim=-1)


class RnntPredictor(nn.Module):
    """Embedding of int64 token indices, an LSTM, a projection to the joint width."""

    def __init__(self, embed: int = 16, hidden: int = 32, joint: int = 32):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.proj = nn.Linear(hidden, joint)

    def forward(self, tokens):
        return self.proj(self.lstm(self.embed(tokens))[0])


class RnntJoint(nn.Module):
    """tanh(enc + pred) to vocabulary logits, for one (frame, token) pair:
    enc [B, J], pred [B, J] -> [B, V]."""

    def __init__(self, joint: int = 32):
        super().__init__()
        self.enc = nn.Linear(joint, joint)
        self.pred = nn.Linear(joint, joint)
        self.out = nn.Linear(joint, VOCAB)

    def forward(self, enc, pred):
        return self.out(torch.tanh(self.enc(enc) + self.pred(pred)))


class RnntJointGrid(RnntJoint):
    """The joint over the full grid: enc [B, T, J], pred [B, U, J] -> [B, T, U, V]."""

    def forward(self, enc, pred):
        return self.out(torch.tanh(self.enc(enc).unsqueeze(2) + self.pred(pred).unsqueeze(1)))


# -- attention and conformer -------------------------------------------------------------
class TransformerBlock(nn.Module):
    """A pre-norm encoder block written out: LayerNorm, 4-head self-attention
    (QK^T and AV as batched MatMuls, Softmax on the last axis), residual,
    LayerNorm, GELU feed-forward, residual. x [B, S, D] -> [B, S, D]."""

    def __init__(self, dim: int = 32, heads: int = 4, ff: int = 64):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ff1, self.ff2 = nn.Linear(dim, ff), nn.Linear(ff, dim)

    def attention(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(x).reshape(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) * (d // self.heads) ** -0.5, dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, s, d))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.ff2(F.gelu(self.ff1(self.norm2(x))))


class EncoderLayer(nn.Module):
    """PyTorch's own nn.TransformerEncoderLayer (4 heads, GELU feed-forward,
    pre-norm, batch first) as users stack it: its attention is
    scaled_dot_product_attention, exported with √(1/√d) on q and on kᵀ.
    x [B, S, D] -> [B, S, D]."""

    def __init__(self, dim: int = 32, heads: int = 4, ff: int = 64):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout=0.0, activation="gelu", batch_first=True,
                                                norm_first=True)

    def forward(self, x):
        return self.layer(x)


class ConformerConv(nn.Module):
    """The conformer convolution module: LayerNorm, pointwise Conv1d to 2D, GLU,
    depthwise Conv1d (kernel 7), BatchNorm1d, SiLU, pointwise Conv1d, residual.
    x [B, T, D] -> [B, T, D]."""

    def __init__(self, dim: int = 32, kernel: int = 7):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Conv1d(dim, 2 * dim, 1)
        self.dw = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.bn = nn.BatchNorm1d(dim)
        self.pw2 = nn.Conv1d(dim, dim, 1)

    def forward(self, x):
        y = F.glu(self.pw1(self.norm(x).transpose(1, 2)), dim=1)
        y = self.pw2(F.silu(self.bn(self.dw(y))))
        return x + y.transpose(1, 2)


class RelativeSelfAttention(nn.Module):
    """Self-attention with relative positions (Transformer-XL, as conformer
    recognizers use it): content and position scores with learned biases u and
    v, the position scores shifted into place by pad, view and slice
    (`rel_shift`). x [B, T, D], pos [1, 2T − 1, D] (distances T − 1 .. −(T − 1))
    -> [B, T, D]."""

    def __init__(self, dim: int = 32, heads: int = 4):
        super().__init__()
        self.heads, self.width = heads, dim // heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.pos = nn.Linear(dim, dim, bias=False)
        self.u = nn.Parameter(torch.randn(heads, self.width) * 0.1)
        self.bias_v = nn.Parameter(torch.randn(heads, self.width) * 0.1)

    @staticmethod
    def rel_shift(scores):
        b, h, t, p = scores.shape
        shifted = F.pad(scores, (1, 0)).view(b, h, p + 1, t)[:, :, 1:].reshape(b, h, t, p)
        return shifted[:, :, :, :p // 2 + 1]

    def forward(self, x, pos):
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.heads, self.width)
        k, v = (f(x).view(b, t, self.heads, self.width).transpose(1, 2) for f in (self.k, self.v))
        p = self.pos(pos).view(1, -1, self.heads, self.width).transpose(1, 2)
        content = (q + self.u).transpose(1, 2) @ k.transpose(-2, -1)
        position = self.rel_shift((q + self.bias_v).transpose(1, 2) @ p.transpose(-2, -1))
        weights = torch.softmax((content + position) * self.width ** -0.5, dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(b, t, d))


class ConformerCtc(nn.Module):
    """A one-block conformer recognizer with a CTC head: input projection,
    half-step SiLU feed-forward, relative-position self-attention, the
    convolution module, a second half-step feed-forward, LayerNorm, Linear to
    the vocabulary, LogSoftmax. features [1, T, 20] -> log probabilities [1, T, 29]."""

    def __init__(self, features: int = 20, dim: int = 32, frames: int = 16):
        super().__init__()
        self.inp = nn.Linear(features, dim)
        self.ff1, self.ff2 = (nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.SiLU(),
                                            nn.Linear(4 * dim, dim)) for _ in range(2))
        self.norm_att, self.norm_out = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.att = RelativeSelfAttention(dim)
        self.conv = ConformerConv(dim)
        self.out = nn.Linear(dim, VOCAB)
        distance = torch.arange(frames - 1, -frames, -1.0).unsqueeze(1)
        rate = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        table = torch.zeros(2 * frames - 1, dim)
        table[:, 0::2], table[:, 1::2] = torch.sin(distance * rate), torch.cos(distance * rate)
        self.register_buffer("positions", table.unsqueeze(0))

    def forward(self, features):
        x = self.inp(features)
        x = x + 0.5 * self.ff1(x)
        x = x + self.att(self.norm_att(x), self.positions)
        x = self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return torch.log_softmax(self.out(self.norm_out(x)), dim=-1)


# -- vision ------------------------------------------------------------------------------
def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act=nn.ReLU6) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        layers = [conv_bn(cin, mid, 1)] if expand != 1 else []
        layers += [conv_bn(mid, mid, 3, stride, groups=mid), conv_bn(mid, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.branch_norm = self.body[-1][1] if self.residual else None

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def _divisible(channels: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018, table 2) at width 0.35 for 96x96 RGB."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, width: float = 0.35, classes: int = 10):
        super().__init__()
        cin = _divisible(32 * width)
        layers = [conv_bn(3, cin, 3, 2)]
        for expand, channels, repeats, stride in self.SETTINGS:
            cout = _divisible(channels * width)
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers.append(conv_bn(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1280, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride, act=nn.ReLU), conv_bn(cout, cout, 3, act=None))
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        self.branch_norm = self.body[-1][1]

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016): a 7x7 stem, max pool, four stages of two
    basic blocks (64-128-256-512 channels), global average pool, Linear."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 64, 7, 2, act=nn.ReLU), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1))


class UNet(nn.Module):
    """A two-level U-Net over a 1x32x32 image: conv blocks, max-pool down,
    up by ConvTranspose (stride 2) or by Resize (nearest at the lower level,
    bilinear at the upper), skip connections by Concat, a 1x1 head."""

    def __init__(self, upsample: str, base: int = 8):
        super().__init__()
        self.down1, self.down2 = self.block(1, base), self.block(base, 2 * base)
        self.bottom = self.block(2 * base, 4 * base)
        self.up2, self.up1 = self.upsampler(upsample, 4 * base, "nearest"), self.upsampler(upsample, 2 * base,
                                                                                          "bilinear")
        widen = 2 if upsample == "convtranspose" else 1
        self.dec2 = self.block(4 * base // widen + 2 * base, 2 * base)
        self.dec1 = self.block(2 * base // widen + base, base)
        self.head = nn.Conv2d(base, 1, 1, bias=False)

    @staticmethod
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(conv_bn(cin, cout, 3, act=nn.ReLU), conv_bn(cout, cout, 3, act=nn.ReLU))

    @staticmethod
    def upsampler(kind: str, channels: int, mode: str) -> nn.Module:
        if kind == "convtranspose":
            return nn.ConvTranspose2d(channels, channels // 2, 2, stride=2)
        return nn.Upsample(scale_factor=2, mode=mode)

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(F.max_pool2d(d1, 2))
        b = self.bottom(F.max_pool2d(d2, 2))
        u2 = self.dec2(torch.cat([self.up2(b), d2], dim=1))
        return self.head(self.dec1(torch.cat([self.up1(u2), d1], dim=1)))


class AudioConv1d(nn.Module):
    """A raw-waveform classifier: strided Conv1d + BatchNorm + ReLU + MaxPool
    stages over 4000 samples (a quarter second at 16 kHz), global average
    pool, Linear to 12 classes."""

    def __init__(self, base: int = 16):
        super().__init__()
        layers, cin = [], 1
        for cout, kernel, stride in ((base, 80, 4), (base, 3, 1), (2 * base, 3, 1), (4 * base, 3, 1)):
            layers += [nn.Conv1d(cin, cout, kernel, stride, bias=False), nn.BatchNorm1d(cout), nn.ReLU(),
                       nn.MaxPool1d(4)]
            cin = cout
        self.features = nn.Sequential(*layers[:-1])
        self.fc = nn.Linear(cin, KWS_CLASSES)

    def forward(self, wave):
        return self.fc(self.features(wave).mean(dim=-1))


class DynamicBatchCnn(nn.Module):
    """A small CNN whose Flatten keeps the batch dimension symbolic when
    exported with a dynamic batch: Conv/BN/ReLU/MaxPool twice, Flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(conv_bn(3, 8, 3, act=nn.ReLU), nn.MaxPool2d(2),
                                      conv_bn(8, 16, 3, act=nn.ReLU), nn.MaxPool2d(2))
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(self.features(x).reshape(x.shape[0], -1))
