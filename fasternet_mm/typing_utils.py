# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""The config type hints of mmdet and mmseg (``mmdet.utils.ConfigType``,
``OptMultiConfig``, ...), defined here with the same meaning so that an
install with only one of the two libraries works."""
from typing import List, Optional, Union

from mmengine.config import ConfigDict

ConfigType = Union[ConfigDict, dict]
OptConfigType = Optional[ConfigType]
MultiConfig = Union[ConfigType, List[ConfigType]]
OptMultiConfig = Optional[MultiConfig]
