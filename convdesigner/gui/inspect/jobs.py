"""What the inspection views ask of the engine, as functions run on the engine thread (never on the GUI thread):
each takes the window's session, asks it for the live network, and returns plain numbers for the views to draw."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ...engine import inspect
from ...engine.inspect import InspectError

HEALTH_BATCH = 32  # validation images per health check and per gradient histogram


@dataclass
class Look:
    """One picture through the network: every block's output (first sample) and the class probabilities."""

    outputs: dict[str, np.ndarray]
    probabilities: np.ndarray
    head: str
    trained: bool
    forward_s: float


def network(session):
    net = session.inspection_network()
    if net is None:
        raise InspectError("the design has errors; fix the blocks marked red to look inside it")
    return net


def labelled_batch(session, net) -> tuple[np.ndarray, np.ndarray] | None:
    """Up to HEALTH_BATCH normalised validation images (training images if there is no validation part)."""
    pair = session.data()
    if not pair:
        return None
    data = pair[1] if pair[1] is not None and len(pair[1]) else pair[0]
    if data is None or not len(data) or data.input_shape != net.input_shape:
        return None
    return data.normalise(data.images[:HEALTH_BATCH]), data.labels[:HEALTH_BATCH]


def look(session, x: np.ndarray) -> Look:
    net = network(session)
    start = time.perf_counter()
    outputs = inspect.activations(net, x)
    seconds = time.perf_counter() - start
    head = net.head.name
    return Look({name: value[0] for name, value in outputs.items()}, net.head.proba(outputs[head])[0], head,
                bool(session.trained), seconds)


def attribution(session, x: np.ndarray, method: str, block: str | None, cls: int | None) -> inspect.Attribution:
    net = network(session)
    if method == "Grad-CAM":
        return inspect.grad_cam(net, x, block or inspect.last_map_block(net), cls)
    if method == "Saliency":
        return inspect.saliency(net, x, cls)
    return inspect.integrated_gradients(net, x, cls)


def filters(session, block: str) -> inspect.Filters:
    net = network(session)
    batch = labelled_batch(session, net)
    return inspect.filters(net, block, *(batch or (None, None)))


def health(session) -> dict[str, inspect.BlockHealth]:
    net = network(session)
    batch = labelled_batch(session, net)
    if batch is None:
        raise InspectError("health marks need a dataset that fits the network's input; choose one in the "
                           "training panel")
    return inspect.block_health(net, *batch)


def top_images(session, block: str, channel: int, progress) -> tuple[list[inspect.ChannelHit], object]:
    """The nine validation images that excite ``channel`` most, and the dataset they index."""
    net = network(session)
    pair = session.data()
    data = (pair[1] if pair and pair[1] is not None and len(pair[1]) else pair[0]) if pair else None
    if data is None or data.input_shape != net.input_shape:
        raise InspectError("the search needs a dataset that fits the network's input; choose one in the training "
                           "panel")
    return inspect.top_activating(net, data, block, channel, 9, progress=progress), data
