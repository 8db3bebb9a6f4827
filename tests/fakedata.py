"""The synthetic data-set writers, under the name the tests import them by."""
from dataset.synthetic import *  # noqa: F401,F403
from dataset.synthetic import CINIC10_CLASSES, balanced_labels, class_images  # noqa: F401
