"""`convdesigner` without a command: a mistyped command, a missing file or no display is a message, never a Qt abort."""
import pytest

from convdesigner import cli


@pytest.mark.parametrize("argv", [["nonexistcmd"], ["missing.h5"], ["--template", "lenet5", "gone.json"]])
def test_unknown_command_or_missing_file(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    name = argv[-1]
    assert capsys.readouterr().err == (f"convdesigner: unknown command or file '{name}'; commands are train, eval, "
                                       f"predict, bench, info, export, import (or give a model file to open)\n")


def test_no_display_is_a_message(monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert cli.main(["--template", "lenet5"]) == 2
    assert capsys.readouterr().err == ("convdesigner: no display to open the window on; use a command "
                                       "(convdesigner -h) or --screenshot FILE\n")


def test_every_command_in_the_help_exists(capsys):
    with pytest.raises(SystemExit):
        cli.main(["-h"])
    shown = capsys.readouterr().out
    for command in ("train", "eval", "predict", "bench", "info", "export", "import"):
        assert command in shown
        with pytest.raises(SystemExit) as done:
            cli.main([command, "-h"])
        assert done.value.code == 0 and f"usage: convdesigner {command}" in capsys.readouterr().out


def test_screenshot_after_training_from_the_panel(tmp_path, monkeypatch):
    """--train-epochs goes through the training panel, as pressing Train does."""
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    png = tmp_path / "trained.png"
    assert cli.main(["--template", "lenet5", "--screenshot", str(png), "--train-epochs", "1"]) == 0
    assert png.stat().st_size > 10_000


def test_train_epochs_needs_a_screenshot(capsys):
    assert cli.main(["--template", "lenet5", "--train-epochs", "1"]) == 2
    assert "--train-epochs and --image go with --screenshot PNG" in capsys.readouterr().err


def test_screenshot_is_quiet(tmp_path, capfd, monkeypatch):
    """The offscreen platform's propagateSizeHints warning is dropped; the PNG is written."""
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    png = tmp_path / "window.png"
    assert cli.main(["--template", "lenet5", "--screenshot", str(png)]) == 0
    assert png.stat().st_size > 10_000
    assert "propagateSizeHints" not in capfd.readouterr().err


def test_missing_x11_library_is_named_before_qt_starts(monkeypatch, capsys):
    def cannot_load(path):
        raise OSError("libxcb-icccm.so.4: cannot open shared object file: No such file or directory")
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr("ctypes.CDLL", cannot_load)
    assert cli.main(["--template", "lenet5"]) == 2
    err = capsys.readouterr().err
    assert "the system library libxcb-icccm.so.4 is missing" in err and "sudo apt install libxcb-cursor0" in err
