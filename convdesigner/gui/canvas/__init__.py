"""The design canvas: a QGraphicsScene of block, port and wire items that mirrors a Graph and edits it by commands."""
