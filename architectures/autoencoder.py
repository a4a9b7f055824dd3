"""The journal's small convolutional autoencoder, used to score counterfactuals (IM1, IIM1, IM2) and
to place inputs in a latent space for prototype-guided counterfactual search.

It is not a classifier, so it is deliberately not registered with `register_model`: the suite's
model registry lists encoders that can carry a Memory Wrap head, and this is not one.

Layout (all convolutions 3x3, 'same' padding, with bias; 5,828 parameters for 3 channels):
encoder conv c->16 ReLU, conv 16->16 ReLU, 2x2 max-pool, conv 16->1 (latent 1 x H/2 x W/2);
decoder conv 1->16 ReLU, conv 16->16 ReLU, nearest x2 upsampling, conv 16->c with no output
activation, because it reconstructs normalised images whose values are not bounded to [0, 1].
"""
from __future__ import annotations

from torch import Tensor, nn

LATENT_CHANNELS = 1
HIDDEN_CHANNELS = 16


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding="same", bias=True)


class ConvAutoencoder(nn.Module):
    """Encoder halves the spatial size once; the decoder doubles it back.

    Inputs need even height and width (32 x 32 images give a 1 x 16 x 16 latent).
    """

    def __init__(self, channels: int = 3):
        super().__init__()
        self.channels = channels
        self.encoder = nn.Sequential(
            _conv(channels, HIDDEN_CHANNELS), nn.ReLU(),
            _conv(HIDDEN_CHANNELS, HIDDEN_CHANNELS), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2),
            _conv(HIDDEN_CHANNELS, LATENT_CHANNELS),
        )
        self.decoder = nn.Sequential(
            _conv(LATENT_CHANNELS, HIDDEN_CHANNELS), nn.ReLU(),
            _conv(HIDDEN_CHANNELS, HIDDEN_CHANNELS), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(HIDDEN_CHANNELS, channels),
        )

    def encode(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> latent [B, 1, H/2, W/2]."""
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"ConvAutoencoder needs even height and width, got {tuple(x.shape[-2:])}")
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Latent [B, 1, h, w] -> reconstruction [B, C, 2h, 2w]."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
