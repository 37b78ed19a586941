"""robustjax speed and memory benchmarks (issue 7): ``python -m benchmarks`` prints one table of
every goal's ratio, measured in one run, and writes it as JSON. Not part of the library and not
part of the test suite; see ``benchmarks/run.py`` for the definitions."""
