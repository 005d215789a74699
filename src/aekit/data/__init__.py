"""Data: every source as float32 (N, C, H, W) images in [0, 1], fitted, split and batched.

    container   ImageData (images, labels, names), select, take
    resize      resize (incl. TF1's legacy bicubic), fit_images (resize / crop / pad), convert_channels
    image_file  one image file in and out, in any format, mode and bit depth
    olivetti    scikit-learn's Olivetti faces, offline from its cache
    lfw         the 100 faces of scikit-image's bundled LFW subset ("lfw-subset")
    arrays      .npy / .npz arrays of images
    tiles       every window of the working size an image holds (data.fit tiles), cut_tiles, tile_data
    folders     folders of image files: checked up front, held in memory or streamed (ImageFiles)
    decoding    many files decoded at once, in order, by worker processes into one tensor (read_each)
    saving      save_folder: images as a folder of PNG files, the inverse of load_folder
    sources     load_data: any of the above by name
    splits      split_indices: random or by subject
    synthetic   dead_leaves: synthetic images (train.synthetic)
    batches     epoch_batches (the training loop's), gather (images of a dataset at once), map_batches
    workers     load_batches: DataLoader worker processes, or this process where shared memory is short;
                kept_workers: the same processes for every pass (training's epochs)
"""

from .arrays import load_array, load_npy
from .batches import epoch_batches, gather, in_batches, inference_batch_size, map_batches
from .container import ImageData, select, take
from .decoding import read_each
from .folders import ImageFiles, find_images, image_files, load_folder
from .image_file import IMAGE_SUFFIXES, ImageInfo, load_image, probe_image, read_image, write_image
from .lfw import load_lfw
from .olivetti import load_olivetti
from .resize import (MAX_SIDE, FitMethod, ResizeMethod, check_crop, convert_channels, fit_images, parse_size, resize,
                     size_problem)
from .saving import save_folder
from .sources import absolute_source, load_data
from .splits import SUBJECT_TEST_FRACTION, SplitName, split_indices, validation_split
from .synthetic import dead_leaves, mix_synthetic
from .tiles import cut_tiles, tile_data
from .workers import kept_workers

__all__ = [
    "FitMethod", "IMAGE_SUFFIXES", "ImageData", "ImageFiles", "ImageInfo", "ResizeMethod", "SUBJECT_TEST_FRACTION", "SplitName", "absolute_source", "check_crop",
    "convert_channels", "cut_tiles", "dead_leaves", "epoch_batches", "find_images", "fit_images", "gather", "image_files", "in_batches", "inference_batch_size", "kept_workers",
    "load_array", "load_data", "load_npy", "load_folder", "load_image", "load_lfw", "load_olivetti", "map_batches", "mix_synthetic", "probe_image",
    "parse_size", "read_each", "read_image", "resize", "save_folder", "select", "size_problem", "split_indices", "take", "tile_data", "validation_split", "write_image",
]
