"""`convdesigner info` lists every layer kind and every template with its parameter count."""
from convdesigner.cli import main
from convdesigner.graph import KINDS, TEMPLATES


def test_info_lists_catalogue_and_templates(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for name in KINDS:
        assert f"    {name} " in out
    for key in TEMPLATES:
        assert f"  {key} " in out
    assert "61,706 parameters" in out
    assert "138,357,544 parameters" in out
