"""Vision Transformer for 32x32 inputs (omihub777/ViT-CIFAR, as used by the Memory Wrap ViT scripts)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import MemoryWrapNet, register_model

POOLINGS = ("cls", "mean")


class MultiHeadSelfAttention(nn.Module):
    """Separate q, k, v projections; scores are scaled by sqrt(feats), the FULL hidden size.

    ViT-CIFAR divides by sqrt(hidden) rather than sqrt(head dim); kept so checkpoints behave the same.
    """

    def __init__(self, feats: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.feats = feats
        self.sqrt_d = math.sqrt(feats)
        self.q = nn.Linear(feats, feats)
        self.k = nn.Linear(feats, feats)
        self.v = nn.Linear(feats, feats)
        self.o = nn.Linear(feats, feats)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        split = (b, n, self.heads, self.feats // self.heads)
        q = self.q(x).view(split).transpose(1, 2)  # (b, h, n, f/h)
        k = self.k(x).view(split).transpose(1, 2)
        v = self.v(x).view(split).transpose(1, 2)
        score = F.softmax(q @ k.transpose(-2, -1) / self.sqrt_d, dim=-1)
        attention = (score @ v).transpose(1, 2).flatten(2)  # (b, n, f)
        return self.dropout(self.o(attention))


class TransformerEncoder(nn.Module):
    """Pre-norm block: x + MSA(LN(x)), then + MLP(LN(.)); the MLP has a GELU after BOTH linears."""

    def __init__(self, feats: int, mlp_hidden: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.la1 = nn.LayerNorm(feats)
        self.msa = MultiHeadSelfAttention(feats, heads, dropout)
        self.la2 = nn.LayerNorm(feats)
        self.mlp = nn.Sequential(
            nn.Linear(feats, mlp_hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_hidden, feats),
            nn.GELU(),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.msa(self.la1(x)) + x
        return self.mlp(self.la2(out)) + out


class ViT(MemoryWrapNet):
    """Patch embedding, learned CLS/positional embeddings (N(0, 1) init), pre-norm encoder blocks.

    Std head: `fc` = LayerNorm -> Linear on the pooled token. The memory variants take the pooled token
    WITHOUT the final LayerNorm; their `fc` (LayerNorm only) is built but unused, as in the original,
    so its checkpoints load strictly. The defaults live in the `vit` factory (the training scripts' values).
    """

    def __init__(
        self,
        modality: str,
        num_classes: int,
        *,
        patches: int,
        depth: int,
        hidden: int,
        heads: int,
        mlp_hidden: int,
        dropout: float,
        pooling: str,
        image_size: int,
    ):
        super().__init__(modality, num_classes)
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}'; valid poolings: {', '.join(POOLINGS)}")
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by the number of heads {heads}")
        if image_size % patches:
            raise ValueError(f"image size {image_size} is not divisible by the patches per side {patches}")
        self.patches = patches
        self.patch_size = image_size // patches
        self.pooling = pooling
        num_tokens = patches**2 + (1 if pooling == "cls" else 0)
        self.emb = nn.Linear(self.patch_size**2 * 3, hidden)
        if pooling == "cls":
            self.cls_token = nn.Parameter(torch.randn(1, 1, hidden))
        self.pos_emb = nn.Parameter(torch.randn(1, num_tokens, hidden))
        self.enc = nn.Sequential(*(TransformerEncoder(hidden, mlp_hidden, heads, dropout) for _ in range(depth)))
        self.feature_dim = hidden
        self.build_head()

    def build_head(self) -> None:
        if self.uses_memory:
            self.fc = nn.Sequential(nn.LayerNorm(self.feature_dim))  # unused; kept for checkpoint compatibility
            super().build_head()
        else:
            self.fc = nn.Sequential(nn.LayerNorm(self.feature_dim), nn.Linear(self.feature_dim, self.num_classes))

    def classify(self, features: Tensor, memory_features: Tensor | None = None, memory_labels: Tensor | None = None,
                 return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        if self.uses_memory:
            return super().classify(features, memory_features, memory_labels, return_weights)
        if memory_features is not None:
            raise ValueError("a std model takes no memory set")
        return self.fc(features)

    def to_tokens(self, x: Tensor) -> Tensor:
        """(b, c, h, w) -> (b, patches**2, p*p*c): unfold H, then W; each token is (p, p, c), channel fastest."""
        p = self.patch_size
        out = x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 4, 5, 1)
        return out.reshape(x.size(0), self.patches**2, -1)

    def forward_encoder(self, x: Tensor) -> Tensor:
        out = self.emb(self.to_tokens(x))
        if self.pooling == "cls":
            out = torch.cat([self.cls_token.expand(out.size(0), -1, -1), out], dim=1)
        out = self.enc(out + self.pos_emb)
        return out[:, 0] if self.pooling == "cls" else out.mean(dim=1)


@register_model("vit", display_name="ViT")
def vit(
    modality: str,
    num_classes: int,
    *,
    patches: int = 8,
    depth: int = 7,
    hidden: int = 384,
    heads: int = 12,
    mlp_hidden: int = 384,
    dropout: float = 0.0,
    pooling: str = "cls",
    image_size: int = 32,
) -> MemoryWrapNet:
    return ViT(
        modality, num_classes, patches=patches, depth=depth, hidden=hidden, heads=heads,
        mlp_hidden=mlp_hidden, dropout=dropout, pooling=pooling, image_size=image_size,
    )
