"""Datasets: the built-in MNIST sample and shapes set, IDX, CIFAR-10, image folders, NPZ/HDF5; batching,
augmentation, and preparing a single picture the way a model's data were prepared."""
from .augment import Augment
from .dataset import Dataset, DatasetError, batches
from .images import load_image
from .load import load_dataset

__all__ = ["Augment", "Dataset", "DatasetError", "batches", "load_dataset", "load_image"]
