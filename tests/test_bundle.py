"""The packaged application: the desktop entry and its file types, and (slow) a PyInstaller one-folder bundle that
builds and renders the window with --screenshot."""
import configparser
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"


def test_the_desktop_entry_opens_model_and_onnx_files_with_its_icon():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "convdesigner.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["Exec"] == "convdesigner %f" and desktop["Icon"] == "convdesigner"
    assert {"application/x-hdf5", "application/x-onnx"} <= set(filter(None, desktop["MimeType"].split(";")))
    mime = ET.parse(PACKAGING / "convdesigner-mime.xml").getroot()
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    assert mime.find("m:mime-type[@type='application/x-onnx']/m:glob", ns).get("pattern") == "*.onnx"
    assert ET.parse(PACKAGING / "convdesigner.svg").getroot().get("viewBox") == "0 0 256 256"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pyinstaller") is None, reason="PyInstaller is not installed")
def test_the_one_folder_bundle_builds_and_renders_a_screenshot(tmp_path):
    done = subprocess.run(["pyinstaller", "--noconfirm", "--log-level", "WARN", "--distpath", str(tmp_path / "dist"),
                           "--workpath", str(tmp_path / "build"), str(PACKAGING / "convdesigner.spec")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    app = tmp_path / "dist" / "ConvDesigner" / ("convdesigner.exe" if sys.platform == "win32" else "convdesigner")
    png = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    shown = subprocess.run([str(app), "--template", "lenet5", "--screenshot", str(png)], capture_output=True,
                           text=True, timeout=600, env=env)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert png.stat().st_size > 10_000
    info = subprocess.run([str(app), "info"], capture_output=True, text=True, timeout=600, env=env)
    assert info.returncode == 0 and "resnet50" in info.stdout
