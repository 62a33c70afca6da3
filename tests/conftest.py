"""pytest configuration. Its presence puts tests/ on sys.path, so test modules in
sub-folders can import the shared helper module `mlperf`."""
