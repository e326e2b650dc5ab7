"""The command line meets hostile or oversized inputs with one line of explanation and exit status 2, never a
traceback: a model file that reads another file, a network too large for memory."""
import h5py
from PIL import Image

from convdesigner import engine
from convdesigner.cli import main
from convdesigner.graph import build
from convdesigner.io import save_model


def trained_lenet(tmp_path):
    graph = build("lenet5")
    path = tmp_path / "m.h5"
    save_model(path, graph, engine.compile(graph).state_dict())
    return path


def test_a_model_file_reading_another_file_is_refused_by_every_command(tmp_path, capsys):
    path = trained_lenet(tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"SENTINEL" * 100)
    with h5py.File(path, "r+") as f:
        del f["weights/fc3/bias"]
        f.create_dataset("weights/fc3/bias", shape=(10,), dtype="f4", external=[(str(secret), 0, 40)])
    picture = tmp_path / "p.png"
    Image.new("L", (28, 28)).save(picture)
    for argv in (["info", str(path)], ["predict", str(path), str(picture)], ["eval", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "external file" in err and "SENTINEL" not in err and "Traceback" not in err, err


def test_a_network_too_large_for_memory(tmp_path, capsys, monkeypatch):
    path = trained_lenet(tmp_path)

    def no_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(engine, "compile", no_memory)
    assert main(["predict", str(path), str(path)]) == 2
    assert "needs more memory than this computer has" in capsys.readouterr().err
