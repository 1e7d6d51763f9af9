"""The hooks package: one hook per module, registered under their names,
and the MMEngine releases AtomicCheckpointHook is tested with."""
import importlib

import pytest

from fasternet_mm.errors import PreflightError
from fasternet_mm.hooks import atomic_checkpoint_hook
from fasternet_mm.registry import HOOKS

MODULES = dict(
    AmpTrainingHook='amp_training_hook',
    AtomicCheckpointHook='atomic_checkpoint_hook',
    Bf16TrainingHook='bf16_training_hook',
    InferenceFormHook='inference_form_hook',
    RandomStateHook='random_state_hook')


@pytest.mark.parametrize('name', sorted(MODULES))
def test_each_hook_lives_in_its_own_module(name):
    module = importlib.import_module(f'fasternet_mm.hooks.{MODULES[name]}')
    hooks = [
        value for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == module.__name__
        and value.__name__.endswith('Hook')
    ]
    assert [hook.__name__ for hook in hooks] == [name]
    assert HOOKS.get(name) is getattr(module, name)


@pytest.mark.parametrize('version', ['0.10.0', '0.10.7', '0.10.99rc1'])
def test_atomic_checkpoint_hook_takes_the_tested_mmengine(version):
    atomic_checkpoint_hook.check_mmengine_version(version)


@pytest.mark.parametrize('version', ['0.9.1', '0.11.0', '1.0.0', 'main'])
def test_atomic_checkpoint_hook_refuses_other_mmengine(version):
    with pytest.raises(PreflightError) as info:
        atomic_checkpoint_hook.check_mmengine_version(version)
    message = str(info.value)
    assert '\n' not in message
    assert f'this is MMEngine {version}' in message
    assert 'mmengine>=0.10,<0.11' in message


def test_atomic_checkpoint_hook_is_built_with_this_mmengine():
    # By its scoped name, as configs give it: another test may have made
    # mmdet the default scope.
    hook = HOOKS.build(
        dict(type='fasternet_mm.AtomicCheckpointHook', interval=1))
    assert isinstance(hook, atomic_checkpoint_hook.AtomicCheckpointHook)


def test_bf16_training_hook_is_a_deprecated_name_of_amp_training_hook():
    # Configs written for the old name still build, with a warning that
    # Python shows by default.
    with pytest.warns(FutureWarning,
                      match='Bf16TrainingHook is deprecated; use '
                      'AmpTrainingHook'):
        hook = HOOKS.build(dict(type='fasternet_mm.Bf16TrainingHook'))
    assert isinstance(hook, HOOKS.get('fasternet_mm.AmpTrainingHook'))
    assert type(hook).priority == 'VERY_HIGH'
