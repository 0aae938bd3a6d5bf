import pytest

from trainkit.core.events import Event, EventBus, Priority


def test_priority_then_registration_order():
    bus, calls = EventBus(), []
    bus.on(Event.BEFORE_ITER, lambda r: calls.append("normal-1"))
    bus.on(Event.BEFORE_ITER, lambda r: calls.append("low"), priority=Priority.LOW)
    bus.on(Event.BEFORE_ITER, lambda r: calls.append("very-high"), priority=Priority.VERY_HIGH)
    bus.on(Event.BEFORE_ITER, lambda r: calls.append("normal-2"))
    bus.on("before_iter", lambda r: calls.append("highest"), priority=0)
    bus.fire(Event.BEFORE_ITER, None)
    assert calls == ["highest", "very-high", "normal-1", "normal-2", "low"]


def test_fire_passes_the_runner_and_only_that_event():
    bus, seen = EventBus(), []
    bus.on(Event.AFTER_ITER, lambda r: seen.append(("after", r)))
    bus.on(Event.BEFORE_ITER, lambda r: seen.append(("before", r)))
    bus.fire(Event.AFTER_ITER, "R")
    assert seen == [("after", "R")]


def test_register_component_uses_method_names_and_per_event_priority():
    class Comp:
        priority = {"before_epoch": 5, "after_iter": 95}

        def __init__(self):
            self.calls = []

        def before_epoch(self, runner):
            self.calls.append("be")

        def after_iter(self, runner):
            self.calls.append("ai")

        def helper(self, runner):  # not an event name: not registered
            raise AssertionError

    bus, comp = EventBus(), Comp()
    assert bus.register(comp, "sched") == [Event.BEFORE_EPOCH, Event.AFTER_ITER]
    bus.on(Event.AFTER_ITER, lambda r: comp.calls.append("other"))
    bus.fire(Event.AFTER_ITER, None)
    bus.fire(Event.BEFORE_EPOCH, None)
    assert comp.calls == ["other", "ai", "be"]
    assert bus.handlers("before_epoch") == [(5, "sched.before_epoch")]
    text = bus.describe()
    assert "sched.after_iter" in text and "95" in text
    assert text.index("before_run") < text.index("before_epoch") < text.index("after_run")


def test_unknown_event_and_bad_handler():
    bus = EventBus()
    with pytest.raises(ValueError, match="unknown event 'before_step'.*before_iter"):
        bus.on("before_step", lambda r: None)
    with pytest.raises(TypeError):
        bus.on(Event.BEFORE_RUN, 3)


def test_runner_fires_events_in_loop_order(tmp_path):
    """The whole loop for 2 epochs x 2 iters, accumulation 2, validation every epoch."""
    import torch
    from torch.utils.data import TensorDataset

    from trainkit.core.runner import Runner

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, batch):
            (x,) = batch
            return {"loss": (self.w * x).sum()}

    trace = []

    class Recorder:
        def __getattr__(self, name):
            if name in {e.value for e in Event}:
                return lambda r: trace.append((name, r.epoch, r.iter, r.inner_iter))
            raise AttributeError(name)

    model = Model()
    runner = Runner(model, torch.optim.SGD(model.parameters(), lr=0.1), TensorDataset(torch.ones(4, 1)),
                    val_data=TensorDataset(torch.ones(2, 1)), evaluator=lambda r: {"val/x": 1.0},
                    components={"rec": Recorder()}, max_epochs=2, batch_size=2, grad_accum=2,
                    work_dir=tmp_path, progress=False)
    runner.run()
    names = [t[0] for t in trace]
    epoch0 = ["before_epoch", "before_iter", "after_iter", "before_iter", "after_step", "after_iter",
              "after_epoch", "before_val", "after_val"]
    assert names == ["before_run"] + epoch0 + epoch0 + ["after_run"]
    # counters: iter is global and 0-based, epoch increments after after_epoch
    assert trace[2] == ("before_iter", 0, 0, 0)
    assert trace[4] == ("before_iter", 0, 1, 1)
    assert trace[5] == ("after_step", 0, 1, 1)
    assert trace[7] == ("after_epoch", 0, 2, 0)
    assert trace[9] == ("after_val", 1, 2, 0)
    assert trace[11] == ("before_iter", 1, 2, 0)
