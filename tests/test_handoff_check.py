"""scripts/check_handoff.py: the hand-off commands it reads from docs/dagger_ppo.md, and its weight check can fail."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def handoff():
    spec = importlib.util.spec_from_file_location("check_handoff", ROOT / "scripts" / "check_handoff.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_holds_both_stages_for_isaaclab_and_mjlab(handoff):
    distill, dagger_ppo = handoff.doc_commands("isaaclab train", TEACHER="/t.pt", DISTILLED="/s.pt")
    for cmd in (distill, dagger_ppo):  # the task is registered by the callback: without it isaaclab cannot find it
        assert "--external_callback" in cmd and "--checkpoint" in cmd and cmd[cmd.index("--checkpoint") + 1] == "/t.pt"
    assert distill[distill.index("--agent") + 1] == "rsl_rl_distillation_cfg_entry_point"
    assert dagger_ppo[dagger_ppo.index("--agent") + 1] == "rsl_rl_dagger_ppo_cfg_entry_point"
    assert {"agent.algorithm.init_student=/s.pt", "agent.algorithm.init_critic_from_teacher=True"} <= set(dagger_ppo)
    distill, dagger_ppo = handoff.doc_commands(
        "python -m dagmix.integrations.mjlab_train", TEACHER="/t.pt", DISTILLED="/s.pt"
    )
    assert distill[3:5] == ["Mjlab-Cartpole-Balance-Dagmix", "--agent.teacher-checkpoint"]
    assert dagger_ppo[dagger_ppo.index("--agent.algorithm.init-student") + 1] == "/s.pt"
    with pytest.raises(KeyError, match="DISTILLED"):
        handoff.doc_commands("isaaclab train", TEACHER="/t.pt")


def test_adam_never_moves_a_weight_further_than_the_bound(handoff):
    assert handoff.adam_step_bound(1) == pytest.approx(1.0)  # Adam's first step is lr * sign(gradient)
    g = torch.Generator().manual_seed(0)
    w = torch.zeros(4096, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1.0)
    for t in range(40):  # adversarial gradients: large ones, then tiny ones of one sign
        opt.zero_grad()
        w.grad = torch.randn(4096, generator=g) * (100.0 if t < 5 else 1e-3) + (1e-3 if t >= 5 else 0.0)
        opt.step()
    assert float(w.detach().abs().max()) <= handoff.adam_step_bound(40)


def _agent(**algorithm):
    alg = {"schedule": "fixed", "optimizer": "adam", "num_learning_epochs": 5, "num_mini_batches": 4}
    return {"algorithm": {**alg, "learning_rate": 1e-3, "init_student_std": 0.2, **algorithm}}


def _weights(seed, std=0.1):
    g = torch.Generator().manual_seed(seed)
    actor = {
        "rnn.weight": (torch.rand(96, 32, generator=g) - 0.5) * 0.35,
        "distribution.std_param": torch.tensor([std]),
    }
    critic = {"mlp.0.weight": (torch.rand(32, 4, generator=g) - 0.5) * 0.35}
    return actor, critic


def test_the_weight_check_passes_a_hand_off_and_fails_a_fresh_actor_or_critic(handoff):
    student, teacher_critic = _weights(seed=1)
    distilled, teacher = {"student_state_dict": student}, {"critic_state_dict": teacher_critic}
    actor = {k: v + 0.02 for k, v in student.items()}
    actor["distribution.std_param"] = torch.tensor([0.21])  # init_student_std 0.2, then trained
    ok = {"iter": 1, "actor_state_dict": actor, "critic_state_dict": {k: v - 0.02 for k, v in teacher_critic.items()}}
    got = handoff.check_weights(ok, distilled, teacher, _agent())
    assert got["bound"] == pytest.approx(1e-3 * handoff.adam_step_bound(40) * 1.001)

    fresh_actor, fresh_critic = _weights(seed=2, std=0.2)  # what a run that ignored init_student would hold
    with pytest.raises(AssertionError, match="actor - distilled student"):
        handoff.check_weights({**ok, "actor_state_dict": fresh_actor}, distilled, teacher, _agent())
    with pytest.raises(AssertionError, match="critic - teacher's critic"):
        handoff.check_weights({**ok, "critic_state_dict": fresh_critic}, distilled, teacher, _agent())
    kept_std = copy.deepcopy(ok)
    kept_std["actor_state_dict"]["distribution.std_param"] = torch.tensor([0.1])  # init_student_std not applied
    with pytest.raises(AssertionError, match="actor - distilled student"):
        handoff.check_weights(kept_std, distilled, teacher, _agent())
    with pytest.raises(AssertionError, match="fixed learning rate"):
        handoff.check_weights(ok, distilled, teacher, _agent(schedule="adaptive"))


def test_help(handoff, capsys):
    with pytest.raises(SystemExit) as exit_info:
        handoff.main(["--help"])
    assert exit_info.value.code == 0 and "--teacher" in capsys.readouterr().out
