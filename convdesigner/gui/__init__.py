"""The designer window (PySide6): palette, canvas, inspector and problems editing a Graph through undoable commands."""
