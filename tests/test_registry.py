import subprocess
import sys
import textwrap

import pytest
from mmengine.registry import HOOKS as MMENGINE_HOOKS

from fasternet_mm import FasterNet, InferenceFormHook
from fasternet_mm.registry import HOOKS

LIBRARIES = ['mmdet', 'mmseg']


@pytest.mark.parametrize('library', LIBRARIES)
@pytest.mark.parametrize('type_name', ['FasterNet', 'fasternet_mm.FasterNet'])
def test_builds_from_downstream_registry(library, type_name):
    registry = pytest.importorskip(f'{library}.registry').MODELS
    model = registry.build(dict(type=type_name, arch='t0', out_indices=(3, )))
    assert isinstance(model, FasterNet)
    assert model.out_indices == (3, )


@pytest.mark.parametrize('library', LIBRARIES)
def test_custom_imports_in_a_config(tmp_path, library):
    pytest.importorskip(library)
    config = tmp_path / 'config.py'
    config.write_text(
        textwrap.dedent(f"""
        default_scope = '{library}'
        custom_imports = dict(imports=['fasternet_mm'],
                              allow_failed_imports=False)
        model = dict(type='FasterNet', arch='t0')
    """))
    script = textwrap.dedent(f"""
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from {library}.registry import MODELS
        cfg = Config.fromfile({str(config)!r})
        init_default_scope(cfg.default_scope)
        model = MODELS.build(cfg.model)
        print(type(model).__module__, type(model).__name__)
    """)
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'fasternet_mm.models.backbones.fasternet FasterNet' in result.stdout


@pytest.mark.parametrize('hidden, present', [('mmseg', 'mmdet'),
                                             ('mmdet', 'mmseg')])
def test_import_with_only_one_library(hidden, present):
    pytest.importorskip(present)
    # A None entry in sys.modules makes `import {hidden}` raise ImportError.
    script = textwrap.dedent(f"""
        import sys
        sys.modules[{hidden!r}] = None
        import fasternet_mm
        from {present}.registry import MODELS
        model = MODELS.build(dict(type='FasterNet', arch='t0'))
        print(model.arch['embed_dim'])
        print(fasternet_mm.register_downstream())
    """)
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split('\n')[:2] == ['40', f"['{present}.registry']"]


def test_another_packages_fasternet_is_kept_with_a_warning():
    script = textwrap.dedent("""
        import warnings
        import torch
        from mmdet.registry import MODELS

        @MODELS.register_module()
        class FasterNet(torch.nn.Module):
            pass

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            import fasternet_mm
        print(MODELS.get('FasterNet') is FasterNet)
        ours = MODELS.build(dict(type='fasternet_mm.FasterNet', arch='t0'))
        print(type(ours) is fasternet_mm.FasterNet)
        print(any("type='fasternet_mm.FasterNet'" in str(w.message)
                  for w in caught))
    """)
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ['True', 'True', 'True']


@pytest.mark.parametrize('library', LIBRARIES)
def test_cpu_wrapper_resolves_as_the_runner_looks_it_up(library):
    from mmengine.registry import MODEL_WRAPPERS, init_default_scope

    from fasternet_mm.distributed import CPUDistributedDataParallel
    downstream = pytest.importorskip(f'{library}.registry').MODEL_WRAPPERS
    init_default_scope(library)
    name = 'fasternet_mm.CPUDistributedDataParallel'
    # The Runner asks the root registry for the class, then builds through
    # the registry of the default scope.
    assert MODEL_WRAPPERS.get(name) is CPUDistributedDataParallel
    assert downstream.get(name) is CPUDistributedDataParallel
    assert 'CPUDistributedDataParallel' not in MODEL_WRAPPERS.module_dict


def test_downstream_names_are_every_class_of_the_scope():
    from fasternet_mm.registry import MODELS
    mmdet_models = pytest.importorskip('mmdet.registry').MODELS
    classes = {
        name
        for name, obj in MODELS.module_dict.items() if isinstance(obj, type)
    }
    assert classes == {
        'FasterNet', 'PartialConv', 'FasterNetBlock', 'FasterNetCSPLayer',
        'FasterNetPAFPN', 'PConvNeXtBlock'
    }
    for name in classes:
        assert mmdet_models.get(name) is MODELS.get(name)
    assert 'PConv' not in mmdet_models.module_dict


def test_inference_form_hook_is_registered_by_its_name():
    # The name tools/test.py --deploy/--amp inserts, and configs may write.
    # (MMEngine would also find a scoped name as an attribute of the
    # package, so the registry's own table is checked too.)
    assert HOOKS.module_dict.get('InferenceFormHook') is InferenceFormHook
    hook = MMENGINE_HOOKS.build(
        dict(
            type='fasternet_mm.InferenceFormHook',
            deploy=False,
            amp='backbone'))
    assert isinstance(hook, InferenceFormHook)
    assert (hook.deploy, hook.amp) == (False, 'backbone')


def test_inference_form_hook_takes_bf16_as_a_deprecated_name_of_amp():
    with pytest.warns(FutureWarning,
                      match=r'InferenceFormHook\(bf16=\.\.\.\) is '
                      r'deprecated; use amp=\.\.\.'):
        hook = MMENGINE_HOOKS.build(
            dict(type='fasternet_mm.InferenceFormHook', bf16='all'))
    assert hook.amp == 'all'
    with pytest.raises(TypeError, match="got both amp='all' and its "
                       "deprecated alias bf16='backbone'"):
        InferenceFormHook(amp='all', bf16='backbone')
    with pytest.raises(ValueError, match="amp must be None, 'all' or "
                       "'backbone', got 'fp16'"):
        InferenceFormHook(amp='fp16')
