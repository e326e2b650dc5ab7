"""Model files (HDF5): save and load a graph with its weights, optimizer and trainer state, history and data."""
from .h5model import ArraySpec, ModelFile, ModelFileError, expected_arrays, file_layout, load_model, save_model

__all__ = ["ArraySpec", "ModelFile", "ModelFileError", "expected_arrays", "file_layout", "load_model", "save_model"]
