from setuptools import setup

# All metadata lives in setup.cfg; this shim keeps `pip install -e .` working
# with older pip and setuptools.
setup()
