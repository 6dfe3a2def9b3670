"""The training history in one module: where its copy lives, what it reads, what an epoch appends."""

from __future__ import annotations

import json

import pytest

from common import history


def test_the_copy_lives_beside_its_checkpoint():
    assert history.path_of("MNIST/pretrained/k1.npz").as_posix() == "MNIST/pretrained/k1.history.json"


def test_an_epoch_record_keeps_the_documented_keys_in_order():
    h = history.empty()
    run = history.start_run(h, {"command": "python3.11 x.py"})
    history.append_epoch(h, epoch=1, run=run, learning_rate=1e-4, train_images=400, train_loss=2.5, train_acc=0.1,
                         held_out="validation", held_out_loss=2.3, held_out_acc=0.12, seconds=12.3456)
    last = history.append_epoch(h, epoch=2, run=run, learning_rate=1e-4, train_images=400, train_loss=None,
                                train_acc=None, held_out="test", held_out_loss=2.0, held_out_acc=0.2, seconds=1,
                                test_acc=0.25)
    assert list(h["epochs"][0]) == ["epoch", "run", "learning_rate", "train_images", "train_loss", "train_acc",
                                    "validation_loss", "validation_acc", "seconds"]
    assert h["epochs"][0]["seconds"] == 12.35 and last["test_acc"] == 0.25 and last["test_loss"] == 2.0
    history.set_wall_seconds(h, run, 3.14159)
    assert h["runs"][0]["wall_seconds"] == 3.14
    assert history.parse(json.dumps(h), "here") == h
    assert history.trained_for(h) == "2 epochs on 400 images"


def test_a_resumed_run_continues_the_history_inside_else_beside_else_none(tmp_path):
    ckpt = tmp_path / "k1.npz"
    inside = {"runs": [{"command": "inside"}], "epochs": []}
    assert history.continued(ckpt, None) == history.empty()
    history.write_beside(ckpt, [{"epoch": 1}])  # the first format: a bare list of epochs
    assert history.continued(ckpt, None) == {"runs": [], "epochs": [{"epoch": 1}]}
    assert history.continued(ckpt, inside) == inside  # the checkpoint's own comes first
    assert history.trained_for_checkpoint(ckpt) == "1 epoch"


@pytest.mark.parametrize("text", ["[" * 200_000 + "]" * 200_000, '{"epochs": [{"epoch": ' + "9" * 5000 + "}]}",
                                  '{"runs": [3], "epochs": []}', "7"])
def test_a_malformed_copy_is_one_error_saying_what_to_do(tmp_path, text):
    ckpt = tmp_path / "k1.npz"
    history.path_of(ckpt).write_text(text)
    with pytest.raises(history.HistoryError, match=r"k1\.history\.json is not a readable training history .*move "
                                                   r"it aside to resume without it$"):
        history.continued(ckpt, None)
    assert history.trained_for_checkpoint(ckpt) == ""  # a figure's label just leaves it out


def test_training_spans_say_which_epochs_ran_on_which_cpu_in_which_precision():
    amx, epyc = ({"cpu": cpu, "settings": {"precision": p}} for cpu, p in (("Intel Xeon", "bfloat16"),
                                                                            ("AMD EPYC", "float32")))
    h = {"runs": [{"cpu": "Intel Xeon", "settings": {}}, amx, amx, epyc],
         "epochs": [{"epoch": e, "run": run, "seconds": 60.0} for e, run in ((1, 0), (2, 1), (3, 2), (4, 2), (5, 3))]}
    spans = history.training_spans(h)
    # a run from before --precision trained in float32; two resumes on one CPU in one precision are one span
    assert [(s.first, s.last, s.cpu, s.precision, s.seconds) for s in spans] == [
        (1, 1, "Intel Xeon", "float32", 60.0), (2, 4, "Intel Xeon", "bfloat16", 180.0),
        (5, 5, "AMD EPYC", "float32", 60.0)]
    assert str(spans[1]) == "epochs 2-4: bfloat16 on Intel Xeon, 1.0 min an epoch, 0.1 h"
    assert str(spans[0]).startswith("epoch 1: float32")
    assert history.training_spans([{"epoch": 1, "seconds": 5}])[0].cpu == "an unrecorded CPU"  # the first format
    assert history.training_spans(None) == []


def test_a_lost_attempt_keeps_its_epochs_beyond_the_restored_state_and_survives_a_resume():
    restored = {"runs": [{"command": "first"}], "epochs": [{"epoch": 1, "run": 0}, {"epoch": 2, "run": 0}]}
    lost = {"runs": [{"command": "first"}, {"command": "second"}],
            "epochs": [{"epoch": e, "run": e // 3} for e in (1, 2, 3, 4)]}
    assert not history.note_lost_attempt(restored, {"runs": [], "epochs": restored["epochs"]}, "now", "epoch 2")
    assert "lost" not in restored
    assert history.note_lost_attempt(restored, lost, "2026-12-07T17:20:42+0000", "epoch 2, the insurance")
    assert restored["lost"] == [{"noted": "2026-12-07T17:20:42+0000", "went_on_from": "epoch 2, the insurance",
                                 "runs": lost["runs"], "epochs": [{"epoch": 3, "run": 1}, {"epoch": 4, "run": 1}]}]
    assert history.parse(json.dumps(restored), "here") == restored  # a resumed run writes it back with the rest
    again = {"runs": [{"command": "first"}], "epochs": restored["epochs"][:1]}  # lost a second time, at epoch 3
    history.note_lost_attempt(again, {**restored, "epochs": [*restored["epochs"], {"epoch": 3, "run": 0}]}, "later",
                              "epoch 1")
    assert [a["noted"] for a in again["lost"]] == ["2026-12-07T17:20:42+0000", "later"]
    assert [e["epoch"] for e in again["lost"][1]["epochs"]] == [2, 3]
    with pytest.raises(history.HistoryError, match="lost attempts is not a list of objects"):
        history.parse(json.dumps({**restored, "lost": [3]}), "here")
