"""Downloads that leave nothing half-written: fetched beside the target, checked, then renamed."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DatasetError


def download_failed(name: str, expected: str, error: Exception) -> DatasetError:
    return DatasetError(f"{name} files not found ({expected}) and the download failed: {error}")


def download_atomically(url: str, path: Path, md5: str, name: str, expected: str) -> None:
    """Download next to `path`, check its md5, then rename: a killed download leaves no partial file."""
    from torchvision.datasets.utils import download_url

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        download_url(url, str(path.parent), filename=partial.name, md5=md5)
    except (OSError, RuntimeError) as error:
        partial.unlink(missing_ok=True)
        raise download_failed(name, expected, error) from None
    os.replace(partial, path)
