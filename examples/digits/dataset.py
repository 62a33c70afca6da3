"""The digits data: scikit-learn's bundled 8x8 handwritten digits (1,797 images,
no download), split once and for all into a training and a test set.

`split()` is the only way train.py, evaluate.py and tests/test_digits.py get
the data, so all three see the same test set: 25 % of the images, stratified by
class, chosen by `train_test_split(random_state=0)`. Images come as float32
[N, 1, 8, 8] scaled from 0..16 to [0, 1], labels as int64 [N].
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

TEST_FRACTION = 0.25
SPLIT_SEED = 0
PIXEL_MAX = 16.0


class Split(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def split() -> Split:
    """The fixed train/test split (needs scikit-learn)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / PIXEL_MAX).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)
    return Split(x_train, y_train, x_test, y_test)
