"""The pixel pipeline against pydicom's own `apply_modality_lut` / `apply_voi_lut` on the same files."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence

import dicom_io
from dicom_io.dicom_file import DicomStack
from dicom_io.windows import Window

# pytest records warnings itself (replacing the filter dicom_io installs); pydicom's complaints about the broken
# inputs these tests feed it are expected, not news.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")



def _pydicom_display(ds: Dataset, index: int = 0) -> np.ndarray:
    """pydicom's reference: modality LUT, then VOI (window `index`), scaled from its output range to 0..255."""
    arr = ds.pixel_array
    hu = apply_modality_lut(arr, ds)
    out = apply_voi_lut(hu, ds, index=index).astype(np.float64)
    if "VOILUTSequence" in ds and "WindowCenter" not in ds:
        top = 2 ** int(ds.VOILUTSequence[index].LUTDescriptor[2]) - 1
        return out / top * 255
    bits = int(ds.BitsStored)
    lo, hi = (0, 2**bits - 1) if ds.PixelRepresentation == 0 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if "RescaleSlope" in ds:
        lo, hi = lo * float(ds.RescaleSlope) + float(ds.RescaleIntercept), hi * float(ds.RescaleSlope) + float(
            ds.RescaleIntercept
        )
    return (out - lo) / (hi - lo) * 255


def _save(ds: Dataset, tmp_path: Path, name: str = "x.dcm") -> Path:
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("name", "index"), [("CT_small.dcm", 0), ("MR_small.dcm", 0), ("examples_overlay.dcm", 0), ("examples_overlay.dcm", 1)]
)
@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_matches_pydicom(pydicom_test_files: Path, tmp_path: Path, name: str, index: int, function: str) -> None:
    ds = pydicom.dcmread(pydicom_test_files / name)
    if "WindowCenter" not in ds:  # CT_small carries no window: give it a mediastinum one
        ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.VOILUTFunction = function
    stack = DicomStack(_save(ds, tmp_path))
    window = stack.windows[index]
    assert window.function == function
    ours = stack.render(0, window).astype(np.float64)
    ref = _pydicom_display(ds, index)
    assert np.abs(ours - ref).max() <= 1.0  # rounding to 8 bits only


def test_file_window_is_the_default_and_multivalued_windows_are_listed(pydicom_test_files: Path) -> None:
    stack = DicomStack(pydicom_test_files / "examples_overlay.dcm")
    assert [(w.center, w.width) for w in stack.windows] == [(450.0, 790.0), (200.0, 443.0)]
    assert stack.default_window == stack.windows[0]
    assert np.array_equal(stack.render(0), stack.render(0, stack.windows[0]))
    assert not np.array_equal(stack.render(0, stack.windows[0]), stack.render(0, stack.windows[1]))


def test_modality_values_match_pydicom_rescale(pydicom_test_files: Path) -> None:
    ds = pydicom.dcmread(pydicom_test_files / "CT_small.dcm")
    ours = DicomStack(pydicom_test_files / "CT_small.dcm").modality_values(0)
    assert ours.dtype == np.float32
    assert np.allclose(ours, apply_modality_lut(ds.pixel_array, ds))
    assert np.allclose(ours, ds.pixel_array.astype(np.float32) - 1024)  # (0028,1052) intercept -1024 applied


def test_preset_windows_in_hounsfield_units(pydicom_test_files: Path) -> None:
    stack = DicomStack(pydicom_test_files / "CT_small.dcm")
    hu = stack.modality_values(0)
    lung = stack.render(0, dicom_io.preset("ct-lung"))
    bone = stack.render(0, dicom_io.preset("bone"))
    lungs = hu < -800
    soft = (hu > 20) & (hu < 60)
    assert lungs.any() and soft.any()
    # Lung window: lung parenchyma dark grey, soft tissue near white. Bone window: lungs black, soft tissue dark.
    assert lung[lungs].max() <= 100 and lung[soft].mean() > 225
    assert bone[lungs].max() == 0 and 70 < bone[soft].mean() < 100


def test_modality_lut_sequence(pydicom_test_files: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_test_files / "MR_small.dcm")
    item = Dataset()
    n = 4096
    item.LUTDescriptor = [n, 0, 16]
    item.ModalityLUTType = "US"
    item.add_new(0x00283006, "US", list(range(0, 2 * n, 2)))  # (0028,3006) LUT Data: doubles every value
    ds.ModalityLUTSequence = Sequence([item])
    ds.WindowCenter, ds.WindowWidth = 1200, 3200
    stack = DicomStack(_save(ds, tmp_path))
    assert np.allclose(stack.modality_values(0), apply_modality_lut(ds.pixel_array, ds))
    ref = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float64) / 65535 * 255
    assert np.abs(stack.render(0).astype(float) - ref).max() <= 1.0


def test_voi_lut_sequence(pydicom_test_files: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_test_files / "MR_small.dcm")
    for kw in ("WindowCenter", "WindowWidth"):
        delattr(ds, kw)
    item = Dataset()
    item.LUTDescriptor = [1024, 0, 8]
    item.add_new(0x00283006, "US", [min(255, v // 2) for v in range(1024)])  # a ramp that saturates at 510
    item.LUTExplanation = "RAMP"
    ds.VOILUTSequence = Sequence([item])
    stack = DicomStack(_save(ds, tmp_path))
    assert stack.default_window is not None and stack.default_window.function == "VOI_LUT"
    assert stack.default_window.explanation == "RAMP"
    ref = _pydicom_display(ds)
    assert np.abs(stack.render(0).astype(float) - ref).max() <= 1.0


def test_monochrome1_and_inverse_presentation_shape_invert(pydicom_test_files: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_test_files / "MR_small.dcm")
    normal = DicomStack(pydicom_test_files / "MR_small.dcm").render(0)
    mono1 = copy.deepcopy(ds)
    mono1.PhotometricInterpretation = "MONOCHROME1"
    inverse = copy.deepcopy(ds)
    inverse.PresentationLUTShape = "INVERSE"
    for variant, name in ((mono1, "m1.dcm"), (inverse, "inv.dcm")):
        out = DicomStack(_save(variant, tmp_path, name)).render(0)
        assert np.array_equal(out.astype(int), 255 - normal.astype(int))


def test_signed_pixels_and_enhanced_functional_groups(tmp_path: Path, ct_dataset, ct_phantom) -> None:
    """Per-frame rescale / window in functional groups are honoured, frame by frame."""
    frames = np.stack([ct_phantom(32, 0), ct_phantom(32, 1)])
    ds = ct_dataset(frames[0], window=None)
    ds.NumberOfFrames = 2
    ds.PixelData = frames.astype("<i2").tobytes()
    del ds.RescaleSlope, ds.RescaleIntercept
    shared = Dataset()
    pvt = Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 1, -1024, "HU"
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for center in (40, -600):
        item, voi = Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = center, 400 if center == 40 else 1500
        item.FrameVOILUTSequence = Sequence([voi])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    stack = DicomStack(_save(ds, tmp_path))
    assert stack.n_frames == 2
    hu1 = stack.modality_values(1)
    assert np.allclose(hu1, frames[1].astype(np.float32) - 1024)
    assert stack.default_window == Window(40.0, 400.0)
    # Each frame is shown with its own window when none is forced: frame 1 with its lung window.
    assert np.array_equal(stack.render(1), stack.render(1, Window(-600.0, 1500.0)))
    assert not np.array_equal(stack.render(1), stack.render(1, Window(40.0, 400.0)))
    assert np.array_equal(stack.render(0), stack.render(0, Window(40.0, 400.0)))


def test_colour_images(pydicom_test_files: Path) -> None:
    rgb = DicomStack(pydicom_test_files / "examples_rgb_color.dcm")
    ds = pydicom.dcmread(pydicom_test_files / "examples_rgb_color.dcm")
    assert np.array_equal(rgb.render(0), ds.pixel_array)
    ybr = DicomStack(pydicom_test_files / "examples_ybr_color.dcm")
    assert ybr.n_frames == 30 and ybr.render(29).shape == (240, 320, 3)
    assert ybr.frame_time_ms == pytest.approx(33.333, rel=1e-3)
    palette = DicomStack(pydicom_test_files / "examples_palette.dcm")
    out = palette.render(0)
    assert out.shape == (350, 800, 3) and out.dtype == np.uint8
    ref = pydicom.pixels.apply_color_lut(pydicom.dcmread(pydicom_test_files / "examples_palette.dcm").pixel_array,
                                         pydicom.dcmread(pydicom_test_files / "examples_palette.dcm"))  # fmt: skip
    assert np.abs(out.astype(int) - (ref >> 8 if ref.dtype != np.uint8 else ref).astype(int)).max() <= 1


def test_odd_sizes_and_16_bit_rgb(pydicom_test_files: Path) -> None:
    odd = DicomStack(pydicom_test_files / "SC_rgb_rle_16bit.dcm")
    img = odd.render_rgb(0)
    assert img.size == odd.size and img.mode == "RGB"
    assert np.asarray(img).max() > 200  # 16-bit samples scaled down, not truncated to their low byte


def test_no_window_uses_percentile_auto_window(pydicom_test_files: Path) -> None:
    stack = DicomStack(pydicom_test_files / "CT_small.dcm")
    assert stack.default_window is None
    auto = stack.auto_window()
    hu = stack.modality_values(0)
    lo, hi = np.percentile(hu, (0.5, 99.5))
    assert auto.center == pytest.approx((lo + hi) / 2) and auto.width == pytest.approx(hi - lo)
    out = stack.render(0)
    assert out.min() == 0 and out.max() == 255


def test_lut_fast_path_equals_direct_computation(pydicom_test_files: Path) -> None:
    """The combined 65,536-entry LUT gives exactly what the step-by-step float computation gives."""
    from dicom_io.pixels import _to_display, modality_values

    ds = pydicom.dcmread(pydicom_test_files / "CT_small.dcm")
    stack = DicomStack(pydicom_test_files / "CT_small.dcm")
    for window in (Window(40, 400), Window(-600, 1500, "SIGMOID"), Window(0, 1), Window(30, 2, "LINEAR_EXACT")):
        direct = _to_display(modality_values(ds.pixel_array, ds), ds, window, invert=False)
        assert np.array_equal(stack.render(0, window), direct)


def test_window_validation() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Window(0, 0.5)
    with pytest.raises(ValueError, match="unknown VOI"):
        Window(0, 10, "CUBIC")
    assert Window.parse("-600, 1500") == Window(-600, 1500)
    with pytest.raises(ValueError):
        Window.parse("abc")
    assert set(dicom_io.PRESETS) == {"ct-lung", "ct-mediastinum", "ct-abdomen", "ct-liver", "ct-bone", "ct-brain",
                                     "ct-subdural", "ct-stroke"}  # fmt: skip
    with pytest.raises(KeyError, match="ct-lung"):
        dicom_io.preset("nope")


def test_float_pixel_data_gets_an_auto_window(tmp_path: Path, ct_dataset, ct_phantom) -> None:
    ds = ct_dataset(ct_phantom(16), window=None)
    values = np.linspace(-1.5, 2.5, 256, dtype=np.float32).reshape(16, 16)
    del ds.PixelData, ds.RescaleSlope, ds.RescaleIntercept, ds.PixelRepresentation, ds.BitsStored, ds.HighBit
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.tobytes()
    stack = DicomStack(_save(ds, tmp_path))
    assert np.allclose(stack.modality_values(0), values)
    out = stack.render(0)
    assert out[0, 0] == 0 and out[-1, -1] == 255 and np.all(np.diff(out.ravel().astype(int)) >= 0)


def test_one_bit_segmentation_is_black_and_white(pydicom_test_files: Path) -> None:
    seg = DicomStack(pydicom_test_files / "liver_1frame.dcm")
    assert seg.metadata["bits_allocated"] == 1
    out = seg.render(0)
    assert set(np.unique(out)) == {0, 255}
