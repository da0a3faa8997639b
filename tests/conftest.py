"""Fixtures shared by every test package: where the golden Dragonfly data lives, headless Qt."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import models.offline  # noqa: E402,F401  (the one place the Hugging Face offline variables are set)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `tests.builders` (the shared synthetic-data builder) is imported from the repo root
    sys.path.insert(0, str(REPO))


@pytest.fixture(autouse=True)
def _private_medapp_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes into the real user's settings, audit log or crash folder: MEDAPP_HOME is a fresh folder unless
    a test (or a package's fixture) points it elsewhere."""
    monkeypatch.setenv("MEDAPP_HOME", str(tmp_path_factory.mktemp("medapp-home")))


def _golden_dir() -> Path:
    env = os.environ.get("MEDAPP_GOLDEN")
    return Path(env) if env else REPO.parent / "shared" / "golden"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.gpu` tests run only where torch sees a CUDA device (torch is imported only if such tests exist)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device (marker gpu)")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """A test that changes torch's intra-op thread count gets it put back when it ends, so no test's speed depends on
    which tests ran before it. Looks only when torch is already imported (importing it here would slow every test)."""
    get = getattr(sys.modules.get("torch"), "get_num_threads", None)
    before = get() if get is not None else None
    yield
    torch = sys.modules.get("torch")  # may be a test's stand-in module until monkeypatch restores the real one
    get = getattr(torch, "get_num_threads", None)
    if get is not None and before is not None and get() != before:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """../shared/golden (reference data from the official Dragonfly code). Missing data is a failure, not a skip."""
    path = _golden_dir()
    assert (path / "README.md").is_file(), f"golden data not found at {path} (set MEDAPP_GOLDEN)"
    return path


@pytest.fixture(scope="session")
def v2_checkpoint(golden_dir: Path) -> Path:
    return golden_dir / "dragonfly-v2-tiny"


@pytest.fixture(scope="session")
def v1_checkpoint(golden_dir: Path) -> Path:
    return golden_dir / "dragonfly-v1-tiny"


@pytest.fixture(scope="session")
def tiny_engine(v2_checkpoint: Path):
    """The tiny golden Dragonfly v2 engine, loaded once per test session through the app's own holder (CPU, no
    quantisation): the one engine the medapp and ui tests share. Tests must not change it (tests that need another
    device, dtype or v1 build their own, as tests/models/runtime does)."""
    from medapp.model_holder import ModelHolder

    return ModelHolder(model_dir=v2_checkpoint, device="cpu", quant="none").get()


@pytest.fixture(scope="session")
def pydicom_test_files() -> Path:
    """The DICOM files bundled inside the installed pydicom wheel (found at run time, not a copied list)."""
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files"


# --- Synthetic CT (one builder for tests/dicom_io, tests/ui and bench/bench_dicom.py: tests/builders.py) ------------


@pytest.fixture(scope="session")
def synthetic_ct_series():
    """`write_ct_series(folder, zs=None, *, n=15, size=64, sizes=None, shuffle=False, marker=False, **dataset_kw)`
    -> the files in slice order (see tests/builders.py)."""
    from tests.builders import write_ct_series

    return write_ct_series


@pytest.fixture(scope="session")
def ct_dataset():
    """`ct_dataset(pixels, **kw)`: one valid CT Image Storage dataset (test modules cannot import a conftest)."""
    from tests.builders import ct_dataset

    return ct_dataset


@pytest.fixture(scope="session")
def ct_phantom():
    """`phantom(size=64, seed=0)`: a body-like CT slice in stored values (HU + 1024)."""
    from tests.builders import phantom

    return phantom


# --- Whole-slide fixtures (owned by dicom_io) -------------------------------------------------------------------
# Real pyramidal slides written by the tests themselves: OpenSlide has no bundled test slide and nothing may be
# downloaded. Each is 2048² at level 0 with 3 levels (2048, 1024, 512), 256² JPEG tiles, tissue-like pink/purple
# blobs on a white background (so tissue detection finds something) and takes well under a second to write.

SLIDE_BASE = 2048
SLIDE_LEVELS = 3
SLIDE_TILE = 256
SLIDE_MPP = 0.5
# The SVS label image is pure saturated green: no tissue or background pixel of the slide ever looks like this,
# so a test can prove the label is never what the normal API returns.
SLIDE_LABEL_RGB = (0, 255, 0)


def _tissue_image(size: int, seed: int = 7):
    """Deterministic H&E-like RGB image: white glass, a few pink tissue blobs with purple 'nuclei'."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    tissue = np.zeros((size, size), bool)
    for cx, cy, r in ((0.3, 0.35, 0.18), (0.65, 0.6, 0.22), (0.4, 0.75, 0.1)):
        tissue |= (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    img = np.full((size, size, 3), (242, 240, 245), np.uint8)
    img[tissue] = (225, 150, 190)
    nuclei = tissue & (rng.random((size, size)) < 0.02)
    img[nuclei] = (110, 60, 150)
    noise = rng.integers(-6, 7, size=(size, size, 1), dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _pyramid(base):
    import numpy as np
    from PIL import Image

    levels = [base]
    img = Image.fromarray(base)
    for _ in range(SLIDE_LEVELS - 1):
        img = img.reduce(2)
        levels.append(np.asarray(img))
    return levels


@pytest.fixture(scope="session")
def slide_levels():
    """The level arrays (level 0 first) every slide fixture is written from, to compare read_region against."""
    return _pyramid(_tissue_image(SLIDE_BASE))


@pytest.fixture(scope="session")
def tiled_tiff_slide(tmp_path_factory, slide_levels) -> Path:
    """A generic tiled pyramid TIFF (OpenSlide vendor 'generic-tiff'), mpp 0.5 in the resolution tags."""
    import tifffile

    path = tmp_path_factory.mktemp("slides") / "pyramid.tif"
    res = 1e4 / SLIDE_MPP  # pixels per cm
    with tifffile.TiffWriter(path) as tw:
        for k, level in enumerate(slide_levels):
            tw.write(level, tile=(SLIDE_TILE, SLIDE_TILE), photometric="rgb", compression="jpeg",
                     subfiletype=0 if k == 0 else 1, resolution=(res / 2**k, res / 2**k), resolutionunit="CENTIMETER",
                     metadata=None)
    return path


@pytest.fixture(scope="session")
def svs_slide(tmp_path_factory, slide_levels) -> Path:
    """An Aperio SVS layout (OpenSlide vendor 'aperio', AppMag 20, MPP 0.5) with a thumbnail, a label and a macro."""
    import numpy as np
    import tifffile

    path = tmp_path_factory.mktemp("slides") / "slide.svs"
    head = "Aperio Image Library v12.0.0\r\n"
    s = SLIDE_BASE
    desc0 = f"{head}{s}x{s} [0,0 {s}x{s}] ({SLIDE_TILE}x{SLIDE_TILE}) JPEG/RGB Q=70|AppMag = 20|MPP = {SLIDE_MPP}"
    thumb = slide_levels[-1][::2, ::2]
    label = np.zeros((120, 200, 3), np.uint8)
    label[:] = SLIDE_LABEL_RGB
    macro = np.zeros((150, 400, 3), np.uint8)
    macro[:] = SLIDE_LABEL_RGB
    with tifffile.TiffWriter(path) as tw:
        tw.write(slide_levels[0], tile=(SLIDE_TILE, SLIDE_TILE), photometric="rgb", compression="jpeg",
                 description=desc0, metadata=None)
        tw.write(thumb, photometric="rgb", compression="jpeg", description=f"{head}thumbnail", metadata=None)
        for level in slide_levels[1:]:
            tw.write(level, tile=(SLIDE_TILE, SLIDE_TILE), photometric="rgb", compression="jpeg",
                     description=desc0, subfiletype=0, metadata=None)
        tw.write(label, photometric="rgb", compression="lzw", description=f"{head}label 200x120",
                 subfiletype=1, metadata=None)
        tw.write(macro, photometric="rgb", compression="jpeg", description=f"{head}macro 400x150",
                 subfiletype=9, metadata=None)
    return path


def _write_dicom_wsi_level(path: Path, level, k: int, uids: dict, mpp: float) -> None:
    """One VL Whole Slide Microscopy Image instance (TILED_FULL, JPEG baseline tiles) for one pyramid level."""
    import io

    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, JPEGBaseline8Bit, generate_uid

    h, w = level.shape[:2]
    t = SLIDE_TILE
    frames = []
    for ty in range(0, h, t):
        for tx in range(0, w, t):
            tile = level[ty : ty + t, tx : tx + t]
            buf = io.BytesIO()
            Image.fromarray(tile).save(buf, "JPEG", quality=90, subsampling=0)
            frames.append(buf.getvalue())
    sop_class = "1.2.840.10008.5.1.4.1.1.77.1.6"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.DimensionOrganizationUID = uids["dim"]
    ds.ContainerIdentifier = "SLIDE-1"
    ds.PatientName, ds.PatientID = "Test^Slide", "WSI001"
    ds.Modality = "SM"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"] if k == 0 else ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
    ds.InstanceNumber = k + 1
    ds.Rows = ds.Columns = t
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = w, h
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.NumberOfFrames = len(frames)
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    ds.ImagedVolumeWidth = SLIDE_BASE * SLIDE_MPP / 1000
    ds.ImagedVolumeHeight = SLIDE_BASE * SLIDE_MPP / 1000
    ds.ImagedVolumeDepth = 0.001
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    ds.FocusMethod, ds.ExtendedDepthOfField = "AUTO", "NO"
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = 20
    origin.YOffsetInSlideCoordinateSystem = 40
    ds.TotalPixelMatrixOriginSequence = Sequence([origin])
    pm = Dataset()
    pm.PixelSpacing = [mpp / 1000, mpp / 1000]
    pm.SliceThickness = 0.001
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([pm])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    opt = Dataset()
    opt.ObjectiveLensPower = 20
    ds.OpticalPathSequence = Sequence([opt])
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="session")
def dicom_wsi_slide(tmp_path_factory, slide_levels) -> Path:
    """A DICOM-WSI series: a folder with one file per level (VL Whole Slide Microscopy, TILED_FULL, JPEG tiles).

    Returns the folder; OpenSlide opens any one of its files and finds the other levels beside it.
    """
    from pydicom.uid import generate_uid

    folder = tmp_path_factory.mktemp("dicom_wsi")
    uids = {key: generate_uid() for key in ("study", "series", "frame", "dim")}
    for k, level in enumerate(slide_levels):
        _write_dicom_wsi_level(folder / f"level{k}.dcm", level, k, uids, SLIDE_MPP * 2**k)
    return folder
