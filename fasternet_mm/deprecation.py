# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""Old names that still work, with a warning: a ``DeprecationWarning``
for names used from Python, a ``FutureWarning`` (which Python shows by
default) for names that configs and command lines write, as
``type='fasternet_mm.Bf16TrainingHook'``."""
import warnings
from typing import Any, Type


def deprecated_alias(owner: str,
                     old_name: str,
                     old_value: Any,
                     new_name: str,
                     new_value: Any,
                     category: Type[Warning] = DeprecationWarning) -> Any:
    """The value of ``new_name``, taken from its deprecated alias
    ``old_name`` when only that was given (with a warning of
    ``category``).

    Raises:
        TypeError: When both names are given.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f'{owner} got both {new_name}={new_value!r} and its '
                        f'deprecated alias {old_name}={old_value!r}; pass '
                        f'{new_name} only')
    warnings.warn(
        f'{owner}({old_name}=...) is deprecated; use {new_name}=...',
        category,
        stacklevel=3)
    return old_value


def deprecated_name(old_name: str,
                    new_name: str,
                    category: Type[Warning] = DeprecationWarning) -> None:
    """Warn that ``old_name``, a function or class, is deprecated in
    favour of ``new_name``; called from the old name's body."""
    warnings.warn(
        f'{old_name} is deprecated; use {new_name}', category, stacklevel=3)
