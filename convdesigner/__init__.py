"""ConvDesigner: design convolutional networks visually, train them, and look inside them."""
__version__ = "0.1.0"
