import numpy as np
import pytest
from PIL import Image

from convdesigner.data import DatasetError, load_dataset
from convdesigner.data.folder import load_image_folder


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def pets(tmp_path):
    """cat/ with two 6×8 RGB PNGs, dog/ with one grey BMP and one JPEG; every picture one flat colour."""
    _save(tmp_path / "pets" / "cat" / "a.png", np.full((6, 8, 3), (200, 10, 10), np.uint8))
    _save(tmp_path / "pets" / "cat" / "b.png", np.full((6, 8, 3), (10, 200, 10), np.uint8))
    _save(tmp_path / "pets" / "dog" / "c.bmp", np.full((6, 8), 90, np.uint8))
    _save(tmp_path / "pets" / "dog" / "d.jpg", np.full((6, 8, 3), 40, np.uint8))
    (tmp_path / "pets" / "dog" / "notes.txt").write_text("not a picture")
    return tmp_path / "pets"


def test_classes_from_sub_folders_colour_when_any_is(pets):
    train, val = load_image_folder(pets)
    assert val is None and train.class_names == ["cat", "dog"]
    assert train.images.shape == (4, 3, 6, 8) and train.labels.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(train.images[0, :, 0, 0], [200, 10, 10])
    np.testing.assert_array_equal(train.images[2, :, 3, 3], [90, 90, 90])  # grey replicated
    assert abs(int(train.images[3, 0, 2, 2]) - 40) <= 2  # JPEG is lossy


def test_resized_and_grey_on_request(pets):
    train, _ = load_image_folder(pets, size=(3, 4), channels=1)
    assert train.images.shape == (4, 1, 3, 4)
    assert train.images[0, 0, 1, 1] == round(0.299 * 200 + 0.587 * 10 + 0.114 * 10)


def test_train_and_val_sub_folders(pets, tmp_path):
    root = tmp_path / "split"
    root.mkdir()
    pets.rename(root / "train")
    _save(root / "val" / "dog" / "e.png", np.zeros((6, 8, 3), np.uint8))
    train, val = load_dataset(root)
    assert (len(train), len(val)) == (4, 1) and val.labels.tolist() == [1]
    assert val.class_names == ["cat", "dog"]


def test_input_shape_resizes_through_load_dataset(pets):
    train, val = load_dataset(pets, input_shape=(1, 12, 16), val_split=0.25)
    assert train.images.shape == (3, 1, 12, 16) and val.images.shape == (1, 1, 12, 16)


def test_inconsistent_sizes_without_input_shape(pets):
    _save(pets / "dog" / "big.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"inconsistent image sizes: .*a\.png is 8×6 but .*big\.png is 10×10"):
        load_image_folder(pets)
    assert load_image_folder(pets, size=(6, 8))[0].images.shape == (5, 3, 6, 8)


def test_empty_folder(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DatasetError, match="nothing: the folder is empty"):
        load_dataset(tmp_path / "nothing")


def test_folder_of_loose_pictures_has_no_class_sub_folders(tmp_path):
    _save(tmp_path / "loose" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match=r"loose: no class sub-folders \(1 pictures lie directly in it\)"):
        load_dataset(tmp_path / "loose")


def test_class_folder_without_pictures(pets):
    (pets / "bird").mkdir()
    with pytest.raises(DatasetError, match="class folder bird holds no pictures"):
        load_image_folder(pets)


def test_corrupt_picture_is_named(pets):
    (pets / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(DatasetError, match=r"cat/broken\.png: cannot decode this picture"):
        load_image_folder(pets, channels=3)


def test_single_picture_is_not_a_dataset(pets):
    with pytest.raises(DatasetError, match="one picture is not a dataset"):
        load_dataset(pets / "cat" / "a.png")
