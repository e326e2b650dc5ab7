"""Learning-rate schedules give the published numbers epoch by epoch and batch by batch."""
import math

import pytest

from convdesigner.engine.schedules import make_schedule, parse_schedule


def rates(schedule, epochs):
    return [schedule.lr(e) for e in range(epochs)]


def test_constant():
    assert rates(make_schedule("constant", 0.1), 3) == [0.1, 0.1, 0.1]


def test_step_multiplies_by_gamma_every_step_size_epochs():
    s = make_schedule("step", 0.1, step_size=2, gamma=0.5)
    assert rates(s, 6) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_cosine_from_base_to_min():
    s = make_schedule("cosine", 1.0, epochs=4, min_lr=0.2)
    # min + (base − min)·(1 + cos(π·e/4))/2
    expect = [1.0, 0.2 + 0.8 * (1 + math.sqrt(0.5)) / 2, 0.6, 0.2 + 0.8 * (1 - math.sqrt(0.5)) / 2, 0.2]
    assert rates(s, 5) == pytest.approx(expect)
    assert s.lr(9) == pytest.approx(0.2)  # past the run it stays at the floor


def test_warmup_ramps_per_batch_then_hands_over():
    s = make_schedule("step", 0.1, warmup=4, step_size=1, gamma=0.5)
    # 3 batches per epoch: global steps 0..3 ramp 1/4, 2/4, 3/4, 4/4 of the wrapped rate
    got = [s.lr(e, b, 3) for e in range(2) for b in range(3)]
    assert got == pytest.approx([0.025, 0.05, 0.075, 0.05, 0.05, 0.05])


def test_plateau_reduces_after_patience_bad_epochs():
    s = make_schedule("plateau", 1.0, patience=1, factor=0.5)
    seen = []
    for loss in [1.0, 0.9, 0.95, 0.92, 0.95, 0.8, 0.85, 0.85]:
        seen.append(s.lr(0))
        s.observe(loss)
    # better, better, bad 1, bad 2 (> patience: ×0.5), bad 1, better, bad 1, bad 2 (×0.5)
    assert seen == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    assert s.lr(0) == 0.25


def test_plateau_state_round_trip():
    s = make_schedule("plateau", 1.0, patience=0, factor=0.1, warmup=2)
    s.observe(1.0)
    s.observe(2.0)
    state = s.state_dict()
    t = make_schedule("plateau", 1.0, patience=0, factor=0.1, warmup=2)
    t.load_state_dict(state)
    assert t.lr(5) == pytest.approx(0.1)
    t.observe(3.0)
    assert t.lr(5) == pytest.approx(0.01)
    assert state["after"]["best"] == 1.0


def test_parse_command_line_form():
    s = parse_schedule("step:step_size=3,gamma=0.2", 0.5, epochs=10)
    assert (s.step_size, s.gamma) == (3, 0.2)
    c = parse_schedule("cosine", 0.5, epochs=10, warmup=100)
    assert c.describe() == "warmup(100 steps) then cosine(epochs=10, min_lr=0)"
    assert c.after.lr(10) == 0.0


@pytest.mark.parametrize("spec,message", [
    ("linear", "unknown schedule 'linear'; choose one of constant, step, cosine, plateau"),
    ("step:gamma", "should be name=value"),
    ("step:gamma=big", "must be a number"),
    ("step:factor=0.5", "step schedule has no setting factor; it takes step_size, gamma"),
    ("step:gamma=2", "gamma must be in"),
])
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_schedule(spec, 0.1, epochs=5)
