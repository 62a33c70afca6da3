"""nnc's fuzz campaign (docs/fuzzing.md).

seeds.py builds the corpus of valid inputs; case.py describes a case (a
sandbox of files and an argv); mutators.py draws case (seed, index) and
spoils it with the mutators of registry.py's table, written in the mut_*.py
family modules; execute.py runs one case in-process and runner.py runs many
in forked workers; sandbox.py and outcome.py sort each run into an outcome
class; tables.py summarizes a campaign.
"""
